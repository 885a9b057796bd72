//go:build tools

// Package tools pins CoreDNS, which `make lab-bins` builds.
package tools

import _ "github.com/coredns/coredns"

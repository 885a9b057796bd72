//go:build tools

// Package tools pins the Traefik gateway that `make images` builds.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"

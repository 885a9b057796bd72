// Package examples holds ning's example topologies. The demo embeds
// edge-city.yaml as its default, so that `ning demo` needs no file.
package examples

import _ "embed"

// EdgeCity is examples/edge-city.yaml.
//
//go:embed edge-city.yaml
var EdgeCity []byte

// Continental is examples/continental.yaml.
//
//go:embed continental.yaml
var Continental []byte

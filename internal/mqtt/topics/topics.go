// Package topics names ning's MQTT topics. It is the one home of their
// shape, shared by the clients (internal/mqtt) and the broker's ACL
// (internal/broker), which must agree on it.
package topics

import (
	"fmt"
	"strings"
)

const (
	// Root prefixes every ning topic.
	Root = "ning/v1/"
	// LatencyPrefix is followed by the source site: ning/v1/latency/<site>.
	LatencyPrefix = Root + "latency/"
	// LatencyAll matches every site's latency topic.
	LatencyAll = LatencyPrefix + "+"
	// Traffic carries TrafficReports.
	Traffic = Root + "traffic"
)

// Latency returns the topic a site's LatencyReports are published on.
func Latency(site string) (string, error) {
	if site == "" || strings.ContainsAny(site, "/+#\x00") {
		return "", fmt.Errorf("site %q cannot be used in an MQTT topic (empty, or contains / + # or NUL)", site)
	}
	return LatencyPrefix + site, nil
}

// SiteOf returns the site of a latency topic, or false.
func SiteOf(topic string) (string, bool) {
	site, ok := strings.CutPrefix(topic, LatencyPrefix)
	if !ok || site == "" || strings.Contains(site, "/") {
		return "", false
	}
	return site, true
}

// Package discover is phase 1 of the Ning seed: it finds the site gateways
// through the Kubernetes API, learns the request rate entering at each site
// (pulled from Prometheus or pushed over OTLP gRPC), picks the busiest site,
// publishes a TrafficReport and starts a `ning probe --once --publish` Job
// pinned to that site.
//
// Bad data (an unreachable Prometheus, an empty result, NaN or negative rates,
// a node the cluster does not know, an OTLP payload of the wrong type) is
// logged, counted in ning_discover_errors_total{reason}, and never replaces
// the previous decision or starts a Job.
package discover

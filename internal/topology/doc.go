// Package topology holds what ning knows about the shape of the cluster: which
// site each node belongs to, the round-trip time between sites, the traffic that
// enters at each site and the load on each node.
//
// It does no I/O. Latency sources (MQTT reports, static files, Goldpinger, a
// prober's /scores) feed a Store; the scheduler plugins, the extender, the
// rescheduler and `ning place` read from it.
package topology

// Package policy holds the placement decisions that ning's scheduler plugins,
// its scheduler extender, its rescheduler and its dashboard all make, so that
// each is made in one place: where the <from> of a delay_<from> label lies,
// when delay constraints fail open, how a workload's placement problem is
// built from sites, traffic and replica counts, how sites are ranked for a
// workload's next replica, what groups a pod with its replicas, and the cloud
// and load rules. The components are adapters: they read their informers and
// the topology store and call this package. It does no I/O.
package policy

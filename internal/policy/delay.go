package policy

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	configv1alpha1 "github.com/ning-edge/ning/api/config/v1alpha1"
	"github.com/ning-edge/ning/internal/placement"
)

// UnknownRTT converts the configuration's policy to placement's.
func UnknownRTT(p configv1alpha1.UnknownRTTPolicy) placement.UnknownRTTPolicy {
	if p == configv1alpha1.FailOpen {
		return placement.FailOpen
	}
	return placement.FailClosed
}

// DelayJudgement is the outcome of a pod's delay constraints at each site.
type DelayJudgement struct {
	// Verdicts maps each judged site to its verdict.
	Verdicts map[string]placement.Verdict
	// UnknownOnly lists, sorted, the sites rejected only because an RTT is
	// unknown.
	UnknownOnly []string
	// KnownBreach is true when a measured RTT breaks a constraint at some
	// judged site.
	KnownBreach bool
}

// JudgeSites judges every site once (sites may repeat).
func JudgeSites(cs []placement.Resolved, sites []string, rtt placement.RTTLookup, p placement.UnknownRTTPolicy) *DelayJudgement {
	return judge(sites, func(site string) placement.Verdict { return placement.CheckSite(cs, site, rtt, p) })
}

// judge judges every site once with verdict.
func judge(sites []string, verdict func(site string) placement.Verdict) *DelayJudgement {
	j := &DelayJudgement{Verdicts: make(map[string]placement.Verdict, len(sites))}
	for _, site := range sites {
		if _, done := j.Verdicts[site]; done {
			continue
		}
		v := verdict(site)
		j.Verdicts[site] = v
		switch {
		case !v.OK && v.Unknown:
			j.UnknownOnly = append(j.UnknownOnly, site)
		case !v.OK:
			j.KnownBreach = true
		}
	}
	sort.Strings(j.UnknownOnly)
	return j
}

// CanFailOpen is the fail-open rule, for a pod that fits no node: when the
// delay constraints rejected some sites only because RTTs are unknown, and
// no measured RTT breaks them anywhere, it is missing data that leaves the
// pod pending, and the constraints fail open for the unmeasured sites. When a
// measured RTT breaks a constraint, an unmeasured site is no safer a guess,
// and the pod waits.
func (j *DelayJudgement) CanFailOpen() bool {
	return len(j.UnknownOnly) > 0 && !j.KnownBreach
}

// FailOpen passes the sites rejected only for an unknown RTT.
func (j *DelayJudgement) FailOpen() {
	for _, site := range j.UnknownOnly {
		j.Verdicts[site] = placement.Verdict{OK: true, Unknown: true}
	}
	j.UnknownOnly = nil
}

// ReasonFailOpen is the reason of the Event on a pod whose delay constraints
// fail open.
const ReasonFailOpen = "NingDelayFailOpen"

// FailOpenMessage is that Event's message.
func FailOpenMessage(sites []string) string {
	return fmt.Sprintf("No node fits and the RTT to sites %v is unknown: delay constraints fail open for those sites for %s", sites, FailOpenFor)
}

// FailOpenFor is how long a pod's delay constraints stay relaxed once they
// have failed open.
const FailOpenFor = 10 * time.Minute

// FailOpenLatch remembers the pods whose delay constraints fail open, and
// until when. It is safe for concurrent use.
type FailOpenLatch struct {
	mu   sync.Mutex
	open map[types.UID]time.Time
}

// Open reports whether the pod's constraints fail open at now.
func (l *FailOpenLatch) Open(uid types.UID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.open[uid]
	if ok && now.After(until) {
		delete(l.open, uid)
		return false
	}
	return ok
}

// Policy is the unknown-RTT policy for the pod at now: FailOpen while it is
// latched, else configured.
func (l *FailOpenLatch) Policy(uid types.UID, configured placement.UnknownRTTPolicy, now time.Time) placement.UnknownRTTPolicy {
	if l.Open(uid, now) {
		return placement.FailOpen
	}
	return configured
}

// Latch makes the pod's constraints fail open for FailOpenFor from now, and
// forgets the pods whose time is up. It returns false when the pod was
// latched already.
func (l *FailOpenLatch) Latch(uid types.UID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open == nil {
		l.open = map[types.UID]time.Time{}
	}
	for u, until := range l.open {
		if now.After(until) {
			delete(l.open, u)
		}
	}
	if _, ok := l.open[uid]; ok {
		return false
	}
	l.open[uid] = now.Add(FailOpenFor)
	return true
}

package broker

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// Bounds limit what the broker holds for its clients. The zero value of a
// field means its default.
type Bounds struct {
	// RetainedMessages and RetainedBytes bound the retained messages over
	// all identities (bytes count payload and topic).
	RetainedMessages int
	RetainedBytes    int64
	// RetainedMessagesPerIdentity and RetainedBytesPerIdentity bound what
	// one identity retains (a prober retains one report, on its own topic).
	RetainedMessagesPerIdentity int
	RetainedBytesPerIdentity    int64
	// PendingBytesPerClient bounds the bytes of messages waiting to be
	// written to one subscriber, or (QoS 1) acknowledged by it, offline
	// sessions included. A subscriber past it is disconnected and its
	// session dropped.
	PendingBytesPerClient int64
}

// Default bounds: they fit the chart's 256 MiB broker with room for the
// runtime. A retained LatencyReport of 2,000 targets is about 200 KB.
const (
	DefaultRetainedMessages            = 10_000
	DefaultRetainedBytes               = 32 << 20
	DefaultRetainedMessagesPerIdentity = 16
	DefaultRetainedBytesPerIdentity    = 4 << 20
	DefaultPendingBytesPerClient       = 16 << 20
)

func (b Bounds) withDefaults() Bounds {
	if b.RetainedMessages <= 0 {
		b.RetainedMessages = DefaultRetainedMessages
	}
	if b.RetainedBytes <= 0 {
		b.RetainedBytes = DefaultRetainedBytes
	}
	if b.RetainedMessagesPerIdentity <= 0 {
		b.RetainedMessagesPerIdentity = DefaultRetainedMessagesPerIdentity
	}
	if b.RetainedBytesPerIdentity <= 0 {
		b.RetainedBytesPerIdentity = DefaultRetainedBytesPerIdentity
	}
	if b.PendingBytesPerClient <= 0 {
		b.PendingBytesPerClient = DefaultPendingBytesPerClient
	}
	return b
}

// boundsHook enforces Bounds. Retained messages are accounted per topic and
// owner as they are published (a message replacing another on its topic
// frees the old one's share). A subscriber's pending bytes grow when a
// message is queued for it and shrink when a QoS 0 message is written or a
// QoS 1 message acknowledged or dropped.
type boundsHook struct {
	mochi.HookBase
	srv      *mochi.Server
	b        Bounds
	refusals *refusals
	mayRead  func(cl *mochi.Client, topic string) bool
	open     bool

	mu           sync.Mutex
	retained     map[string]retainedEntry // topic -> entry
	owners       map[string]usage         // identity -> its retained messages
	total        usage
	pending      map[string]*pendingState // client ID -> what waits for it
	pendingTotal int64
}

type retainedEntry struct {
	owner string
	bytes int64
}

type usage struct {
	count int
	bytes int64
}

type pendingState struct {
	qos0     int64
	inflight map[uint16]int64
	sum      int64
	dropping bool
}

func newBoundsHook(srv *mochi.Server, b Bounds, r *refusals, ids *identityHook) *boundsHook {
	mayRead := func(cl *mochi.Client, topic string) bool {
		id, err := ParseIdentity(string(cl.Properties.Username))
		return ids.open || (err == nil && id.MaySubscribe(topic))
	}
	return &boundsHook{srv: srv, b: b.withDefaults(), refusals: r, mayRead: mayRead, open: ids.open,
		retained: map[string]retainedEntry{}, owners: map[string]usage{}, pending: map[string]*pendingState{}}
}

func (h *boundsHook) collectors() []prometheus.Collector {
	locked := func(f func() float64) func() float64 {
		return func() float64 { h.mu.Lock(); defer h.mu.Unlock(); return f() }
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ning_broker_retained_messages", Help: retainedMessagesHelp},
			locked(func() float64 { return float64(h.total.count) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ning_broker_retained_bytes", Help: retainedBytesHelp},
			locked(func() float64 { return float64(h.total.bytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ning_broker_pending_bytes", Help: pendingBytesMetricHelp},
			locked(func() float64 { return float64(h.pendingTotal) })),
	}
}

func (h *boundsHook) ID() string { return "ning-bounds" }

func (h *boundsHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnPublish, mochi.OnRetainedExpired, mochi.OnPacketSent, mochi.OnQosPublish,
		mochi.OnQosComplete, mochi.OnQosDropped, mochi.OnPublishDropped, mochi.OnDisconnect, mochi.OnClientExpired}, []byte{b})
}

func retainedSize(pk packets.Packet) int64 { return int64(len(pk.Payload) + len(pk.TopicName)) }

// seedRetained accounts the retained messages restored from the store.
func (h *boundsHook) seedRetained() {
	for _, pk := range h.srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(pk.TopicName, "$") {
			continue // the broker's own $SYS topics, a fixed set
		}
		owner := "restored"
		if cl, ok := h.srv.Clients.Get(pk.Origin); ok {
			owner = string(cl.Properties.Username)
		}
		h.mu.Lock()
		h.setRetainedLocked(pk.TopicName, owner, retainedSize(pk))
		h.mu.Unlock()
	}
}

func (h *boundsHook) setRetainedLocked(topic, owner string, size int64) {
	if old, ok := h.retained[topic]; ok {
		u := h.owners[old.owner]
		u.count--
		u.bytes -= old.bytes
		if u.count <= 0 {
			delete(h.owners, old.owner)
		} else {
			h.owners[old.owner] = u
		}
		h.total.count--
		h.total.bytes -= old.bytes
		delete(h.retained, topic)
	}
	if size == 0 {
		return
	}
	h.retained[topic] = retainedEntry{owner: owner, bytes: size}
	u := h.owners[owner]
	u.count++
	u.bytes += size
	h.owners[owner] = u
	h.total.count++
	h.total.bytes += size
}

// OnPublish refuses a retained message beyond the bounds (PUBACK 0x97 quota
// exceeded for an MQTT 5 QoS 1 publish, dropped otherwise) and accounts the
// QoS 0 copies the message will queue for its subscribers.
func (h *boundsHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	owner := string(cl.Properties.Username)
	switch {
	case cl.Net.Inline:
		owner = "inline"
	case h.open:
		owner = "client " + cl.ID // no identities: each client has its own share
	}
	if pk.FixedHeader.Retain {
		if reason, detail := h.retain(owner, pk); reason != "" {
			h.refusals.refuse(reason, owner, detail)
			if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
				return pk, packets.ErrQuotaExceeded
			}
			return pk, packets.ErrRejectPacket
		}
	}
	h.queueQoS0(pk)
	return pk, nil
}

func (h *boundsHook) retain(owner string, pk packets.Packet) (reason, detail string) {
	size := retainedSize(pk)
	if len(pk.Payload) == 0 {
		size = 0 // an empty retained message clears the topic
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u, total := h.owners[owner], h.total
	if old, ok := h.retained[pk.TopicName]; ok {
		total.count--
		total.bytes -= old.bytes
		if old.owner == owner {
			u.count--
			u.bytes -= old.bytes
		}
	}
	if size > 0 {
		u.count++
		u.bytes += size
		total.count++
		total.bytes += size
	}
	switch {
	case size == 0:
	case u.count > h.b.RetainedMessagesPerIdentity:
		return RefusedRetainedCount, fmt.Sprintf("retained message %d on %s is over the %d per identity", u.count, pk.TopicName, h.b.RetainedMessagesPerIdentity)
	case u.bytes > h.b.RetainedBytesPerIdentity:
		return RefusedRetainedBytes, fmt.Sprintf("%d retained bytes with %s are over the %d per identity", u.bytes, pk.TopicName, h.b.RetainedBytesPerIdentity)
	case total.count > h.b.RetainedMessages:
		return RefusedRetainedCount, fmt.Sprintf("retained message %d on %s is over the broker's %d", total.count, pk.TopicName, h.b.RetainedMessages)
	case total.bytes > h.b.RetainedBytes:
		return RefusedRetainedBytes, fmt.Sprintf("%d retained bytes with %s are over the broker's %d", total.bytes, pk.TopicName, h.b.RetainedBytes)
	}
	h.setRetainedLocked(pk.TopicName, owner, size)
	return "", ""
}

func (h *boundsHook) OnRetainedExpired(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.setRetainedLocked(topic, "", 0)
}

// queueQoS0 adds a message's size to each subscriber that will get it with
// QoS 0 (QoS 1 copies are accounted in OnQosPublish, once they have an ID).
func (h *boundsHook) queueQoS0(pk packets.Packet) {
	subs := h.srv.Topics.Subscribers(pk.TopicName)
	size := int64(len(pk.Payload))
	for id, sub := range subs.Subscriptions {
		if min(pk.FixedHeader.Qos, sub.Qos) > 0 || (sub.NoLocal && pk.Origin == id) {
			continue
		}
		cl, ok := h.srv.Clients.Get(id)
		if !ok || cl.Closed() || !h.mayRead(cl, pk.TopicName) {
			continue
		}
		h.mu.Lock()
		p := h.stateLocked(id)
		p.qos0 += size
		over := h.addLocked(p, size)
		h.mu.Unlock()
		if over {
			h.drop(cl)
		}
	}
}

func (h *boundsHook) stateLocked(id string) *pendingState {
	p := h.pending[id]
	if p == nil {
		p = &pendingState{inflight: map[uint16]int64{}}
		h.pending[id] = p
	}
	return p
}

// addLocked adds delta to a client's pending bytes and reports whether it
// is now over its bound (and not already being dropped).
func (h *boundsHook) addLocked(p *pendingState, delta int64) bool {
	p.sum += delta
	h.pendingTotal += delta
	if p.sum > h.b.PendingBytesPerClient && !p.dropping {
		p.dropping = true
		return true
	}
	return false
}

// drop disconnects a subscriber past its pending bound and drops its
// session (subscriptions and in-flight messages), off the publisher's path.
func (h *boundsHook) drop(cl *mochi.Client) {
	h.refusals.refuse(RefusedSlowSubscriber, string(cl.Properties.Username),
		fmt.Sprintf("client %q has over %d bytes waiting; disconnected, session dropped", cl.ID, h.b.PendingBytesPerClient))
	go func() {
		cl.Stop(packets.ErrQuotaExceeded)
		h.srv.UnsubscribeClient(cl)
		cl.ClearInflights()
		if cur, ok := h.srv.Clients.Get(cl.ID); ok && cur == cl {
			h.srv.Clients.Delete(cl.ID)
		}
		h.forget(cl.ID)
	}()
}

func (h *boundsHook) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.pending[id]; p != nil {
		h.pendingTotal -= p.sum
		delete(h.pending, id)
	}
}

func (h *boundsHook) OnPacketSent(cl *mochi.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos > 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.pending[cl.ID]; p != nil && p.qos0 > 0 {
		d := min(p.qos0, int64(len(pk.Payload)))
		p.qos0 -= d
		h.addLocked(p, -d)
	}
}

func (h *boundsHook) OnPublishDropped(cl *mochi.Client, pk packets.Packet) {
	h.OnPacketSent(cl, pk, nil) // a QoS 0 copy that never made the queue
}

func (h *boundsHook) OnQosPublish(cl *mochi.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish {
		return // the broker's own PUBREC for an inbound QoS 2 message
	}
	h.mu.Lock()
	p := h.stateLocked(cl.ID)
	if _, ok := p.inflight[pk.PacketID]; ok {
		h.mu.Unlock()
		return // a resend
	}
	size := int64(len(pk.Payload))
	p.inflight[pk.PacketID] = size
	over := h.addLocked(p, size)
	h.mu.Unlock()
	if over {
		h.drop(cl)
	}
}

func (h *boundsHook) done(cl *mochi.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.pending[cl.ID]; p != nil {
		if size, ok := p.inflight[pk.PacketID]; ok {
			delete(p.inflight, pk.PacketID)
			h.addLocked(p, -size)
		}
	}
}

func (h *boundsHook) OnQosComplete(cl *mochi.Client, pk packets.Packet) { h.done(cl, pk) }
func (h *boundsHook) OnQosDropped(cl *mochi.Client, pk packets.Packet)  { h.done(cl, pk) }

// OnDisconnect forgets the queued QoS 0 copies (they die with the
// connection; in-flight QoS 1 messages stay with a kept session) and counts
// a client refused for an oversized packet.
func (h *boundsHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	if err != nil && (err == packets.ErrPacketTooLarge || isCode(err, packets.ErrPacketTooLarge)) {
		h.refusals.refuse(RefusedPacketTooLarge, string(cl.Properties.Username), fmt.Sprintf("client %q sent a packet over %d bytes", cl.ID, h.srv.Options.Capabilities.MaximumPacketSize))
	}
	if expire {
		h.forget(cl.ID)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.pending[cl.ID]; p != nil {
		h.addLocked(p, -p.qos0)
		p.qos0, p.dropping = 0, false
	}
}

func (h *boundsHook) OnClientExpired(cl *mochi.Client) { h.forget(cl.ID) }

func isCode(err error, c packets.Code) bool {
	code, ok := err.(packets.Code)
	return ok && code.Code == c.Code
}

// pendingBytes is what waits for all subscribers together.
func (h *boundsHook) pendingBytes() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pendingTotal
}

package broker

import (
	"bytes"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sendQuotaHook works around a flow-control leak in mochi-mqtt v2.7.9. When a
// client's Receive Maximum (the QoS 1 messages it accepts unacknowledged) is
// used up, mochi holds further messages and releases one after each packet
// the client sends, deleting it from its in-flight store as it goes out. The
// client's PUBACK for such a message then finds nothing in flight, so mochi
// never gives the send quota back: after Receive Maximum such messages the
// client receives nothing more, ever. ning's subscriber asks for a small
// Receive Maximum to bound its memory, so without this hook a burst of
// reports stalls it for good (TestMQTTFlood in internal/source shows it).
// The hook returns the quota for a PUBACK of a message no longer in flight.
type sendQuotaHook struct{ mochi.HookBase }

func (h *sendQuotaHook) ID() string { return "ning-send-quota" }

func (h *sendQuotaHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnPacketRead}, []byte{b})
}

func (h *sendQuotaHook) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Puback {
		if _, inflight := cl.State.Inflight.Get(pk.PacketID); !inflight {
			cl.State.Inflight.IncreaseSendQuota()
		}
	}
	return pk, nil
}

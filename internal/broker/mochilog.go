package broker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLog is the logger mochi-mqtt gets. mochi logs whole packets with
// some errors ("publish packet error", payload included, at error level,
// for every publish a hook refuses): a flood of 1.9 MB refused publishes
// became a flood of 1.9 MB log lines and took 0.7 s of CPU each. It writes a
// packet as a one-line summary, and leaves "publish packet error" out: the
// only hooks that refuse publishes are ning's, which count and log each
// refusal themselves, throttled.
type mochiLog struct{ slog.Handler }

func newMochiLog(log *slog.Logger) *slog.Logger { return slog.New(mochiLog{log.Handler()}) }

func (h mochiLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "publish packet error" {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if pk, ok := a.Value.Any().(packets.Packet); ok {
			a = slog.String(a.Key, fmt.Sprintf("type %d topic %q id %d, %d payload bytes", pk.FixedHeader.Type, pk.TopicName, pk.PacketID, len(pk.Payload)))
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h mochiLog) WithAttrs(as []slog.Attr) slog.Handler { return mochiLog{h.Handler.WithAttrs(as)} }
func (h mochiLog) WithGroup(name string) slog.Handler    { return mochiLog{h.Handler.WithGroup(name)} }

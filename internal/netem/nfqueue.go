package netem

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The nfnetlink_queue protocol (include/uapi/linux/netfilter/nfnetlink_queue.h),
// spoken directly over github.com/mdlayher/netlink: the dedicated Go NFQUEUE
// libraries are not served by the module proxy this project builds from, and
// the part needed here (bind, metadata-only copy, verdicts) is small.
const (
	nfnlSubsysQueue = 3

	nfqnlMsgPacket  = 0
	nfqnlMsgVerdict = 1
	nfqnlMsgConfig  = 2

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2

	nfqaCfgCmd      = 1
	nfqaCfgParams   = 2
	nfqaCfgQueueLen = 3

	nfqnlCfgCmdBind = 1

	nfqnlCopyMeta = 1

	// Verdicts.
	nfDrop   = 0
	nfAccept = 1
)

// queue is one bound NFQUEUE queue in one network namespace.
type queue struct {
	conn *netlink.Conn
	num  uint16
}

// openQueue binds queue num in the network namespace whose file descriptor is
// netns (0: this process's namespace). Packets carry metadata only: the
// delayer never looks inside them.
func openQueue(netns int, num uint16, maxLen uint32) (*queue, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("nfqueue %d: netlink: %w", num, err)
	}
	q := &queue{conn: conn, num: num}
	// A burst larger than the socket buffer must not stop the reader.
	_ = conn.SetOption(netlink.NoENOBUFS, true)
	_ = conn.SetReadBuffer(4 << 20)

	cmd := make([]byte, 4)
	cmd[0] = nfqnlCfgCmdBind
	binary.BigEndian.PutUint16(cmd[2:], unix.AF_INET)
	params := make([]byte, 5)
	params[4] = nfqnlCopyMeta
	qlen := binary.BigEndian.AppendUint32(nil, maxLen)
	if err := q.config(netlink.Attribute{Type: nfqaCfgCmd, Data: cmd}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("nfqueue %d: bind: %w", num, err)
	}
	if err := q.config(netlink.Attribute{Type: nfqaCfgParams, Data: params},
		netlink.Attribute{Type: nfqaCfgQueueLen, Data: qlen}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("nfqueue %d: copy mode: %w", num, err)
	}
	return q, nil
}

func (q *queue) header() []byte {
	// struct nfgenmsg: family, version (NFNETLINK_V0), resource id (the queue) big-endian.
	h := []byte{unix.AF_UNSPEC, 0, 0, 0}
	binary.BigEndian.PutUint16(h[2:], q.num)
	return h
}

func (q *queue) config(attrs ...netlink.Attribute) error {
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	_, err = q.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | nfqnlMsgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(q.header(), b...),
	})
	return err
}

// receive returns the ids of the packets queued since the last call. It
// returns an error after close.
//
// A verdict for a packet the kernel no longer holds comes back as an error
// message of its own, ENOENT: the kernel drops what a queue holds for a
// device that goes down (Lab.SetLinks), and the verdicts sent for those
// packets after that find nothing. That is no fault of the queue, so it
// returns no ids and no error.
func (q *queue) receive() ([]uint32, error) {
	msgs, err := q.conn.Receive()
	if op := (*netlink.OpError)(nil); errors.As(err, &op) && errors.Is(op.Err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, m := range msgs {
		if m.Header.Type != netlink.HeaderType(nfnlSubsysQueue<<8|nfqnlMsgPacket) || len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("nfqueue %d: decoding packet: %w", q.num, err)
		}
		for ad.Next() {
			if ad.Type() == nfqaPacketHdr {
				if b := ad.Bytes(); len(b) >= 4 {
					ids = append(ids, binary.BigEndian.Uint32(b))
				}
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("nfqueue %d: decoding packet: %w", q.num, err)
		}
	}
	return ids, nil
}

// verdict accepts or drops one packet.
func (q *queue) verdict(id uint32, accept bool) error {
	v := make([]byte, 8)
	if accept {
		binary.BigEndian.PutUint32(v, nfAccept)
	} else {
		binary.BigEndian.PutUint32(v, nfDrop)
	}
	binary.BigEndian.PutUint32(v[4:], id)
	b, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: nfqaVerdictHdr, Data: v}})
	if err != nil {
		return fmt.Errorf("encoding verdict: %w", err)
	}
	_, err = q.conn.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | nfqnlMsgVerdict), Flags: netlink.Request},
		Data:   append(q.header(), b...),
	})
	if err != nil {
		return fmt.Errorf("nfqueue %d: verdict for packet %d: %w", q.num, id, err)
	}
	return nil
}

// close closes the socket, which ends a blocked receive; the kernel unbinds
// the queue and drops what it still holds when the socket goes.
func (q *queue) close() error { return q.conn.Close() }

package broker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// identityHook authenticates every client as one Identity and enforces its
// topic ACL. A client is who its verified client certificate names, or the
// username whose password it knows (from the users file, or derived from
// the identity key), or the identity its Kubernetes ServiceAccount token
// maps to (TokenAuth). A client ID belongs to the identity that holds its
// session: a connect by another identity with that ID is refused, so no
// session can be taken over. Anonymous mode (no users, no key, anonymous
// allowed) lets every client do everything, as asked for.
type identityHook struct {
	mochi.HookBase
	srv      *mochi.Server
	users    map[string]string
	key      []byte
	tokens   *TokenAuth
	open     bool
	refusals *refusals
}

func (h *identityHook) ID() string { return "ning-identity" }

func (h *identityHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}

// peerCerts is what a connection wrapped by the listener tells of its TLS
// client certificate (nil without one).
type peerCerts interface{ peerCertificates() []*x509.Certificate }

// OnConnect runs before OnConnectAuthenticate and sends its own CONNACK, so
// that a refused client learns why (bad credentials 0x86, another
// identity's client ID 0x85, not authorised 0x87).
func (h *identityHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	remote := cl.Net.Remote
	id, code, detail := h.authenticate(cl, pk)
	if code != packets.CodeSuccess {
		reason := RefusedCredentials
		if code == packets.ErrNotAuthorized {
			reason = RefusedIdentity
		}
		h.refusals.refuse(reason, hostOf(remote), detail)
		_ = h.srv.SendConnack(cl, code, false, nil)
		return code
	}
	if h.open {
		return nil
	}
	if existing, ok := h.srv.Clients.Get(cl.ID); ok && string(existing.Properties.Username) != id.Name {
		h.refusals.refuse(RefusedClientIDTaken, id.Name, fmt.Sprintf("client ID %q belongs to %q (from %s)", cl.ID, existing.Properties.Username, remote))
		_ = h.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	// The session, its ACL and its stored copy carry the identity.
	cl.Properties.Username = []byte(id.Name)
	return nil
}

func (h *identityHook) authenticate(cl *mochi.Client, pk packets.Packet) (Identity, packets.Code, string) {
	user := string(pk.Connect.Username)
	if pc, ok := cl.Net.Conn.(peerCerts); ok {
		if certs := pc.peerCertificates(); len(certs) > 0 {
			id, err := CertIdentity(certs[0])
			if err != nil {
				return Identity{}, packets.ErrNotAuthorized, "client certificate: " + err.Error()
			}
			if user != "" && user != id.Name {
				return Identity{}, packets.ErrNotAuthorized, fmt.Sprintf("username %q, certificate names %q", user, id.Name)
			}
			return id, packets.CodeSuccess, ""
		}
	}
	if h.open {
		return Identity{Name: user, Role: RoleAdmin}, packets.CodeSuccess, ""
	}
	if user == "" {
		return Identity{}, packets.ErrBadUsernameOrPassword, "no username and no client certificate"
	}
	pass := pk.Connect.Password
	if user == TokenUsername && h.tokens != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		id, err := h.tokens.Identify(ctx, string(pass))
		if err != nil {
			return Identity{}, packets.ErrBadUsernameOrPassword, err.Error()
		}
		return id, packets.CodeSuccess, ""
	}
	id, err := ParseIdentity(user)
	if err != nil {
		return Identity{}, packets.ErrBadUsernameOrPassword, err.Error()
	}
	if want, ok := h.users[user]; ok && subtle.ConstantTimeCompare([]byte(want), pass) == 1 {
		return id, packets.CodeSuccess, ""
	}
	if len(h.key) > 0 && subtle.ConstantTimeCompare([]byte(DerivedPassword(h.key, user)), pass) == 1 {
		return id, packets.CodeSuccess, ""
	}
	return Identity{}, packets.ErrBadUsernameOrPassword, fmt.Sprintf("wrong password for %q", user)
}

// OnConnectAuthenticate accepts what OnConnect let through.
func (h *identityHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

// OnACLCheck is called for each publish (write), each subscription filter
// and each message about to go to a subscriber (read).
func (h *identityHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if h.open {
		return true
	}
	name := string(cl.Properties.Username)
	id, err := ParseIdentity(name)
	if err == nil && ((write && id.MayPublish(topic)) || (!write && id.MaySubscribe(topic))) {
		return true
	}
	if write {
		h.refusals.refuse(RefusedPublish, name, "publish on "+topic)
	} else {
		h.refusals.refuse(RefusedSubscribe, name, "subscribe to "+topic)
	}
	return false
}

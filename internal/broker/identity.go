package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/ning-edge/ning/internal/mqtt/topics"
)

// Role is what an identity may do on the broker.
type Role string

// Roles. A prober publishes its own site's latency reports, discovery the
// traffic report; the readers only subscribe.
const (
	RoleProbe    Role = "probe"
	RoleDiscover Role = "discover"
	RoleReader   Role = "reader"
	RoleAdmin    Role = "admin"
)

// readers are the identity names of the components that only subscribe.
var readers = map[string]bool{"scheduler": true, "extender": true, "rescheduler": true, "dashboard": true}

// Identity is who a client is: an MQTT username, or the name in its client
// certificate. Its name says its role and, for a prober, its site:
// "probe@SITE", "discover", "scheduler", "extender", "rescheduler",
// "dashboard" or "admin".
type Identity struct {
	Name string
	Role Role
	// Site is the prober's site (RoleProbe only).
	Site string
}

// ParseIdentity reads an identity name.
func ParseIdentity(name string) (Identity, error) {
	if site, ok := strings.CutPrefix(name, "probe@"); ok {
		if _, err := topics.Latency(site); err != nil {
			return Identity{}, fmt.Errorf("identity %q: %w", name, err)
		}
		return Identity{Name: name, Role: RoleProbe, Site: site}, nil
	}
	switch {
	case name == "discover":
		return Identity{Name: name, Role: RoleDiscover}, nil
	case readers[name]:
		return Identity{Name: name, Role: RoleReader}, nil
	case name == "admin":
		return Identity{Name: name, Role: RoleAdmin}, nil
	}
	return Identity{}, fmt.Errorf("identity %q: want probe@SITE, discover, scheduler, extender, rescheduler, dashboard or admin", name)
}

// MayPublish reports whether the identity may publish on topic.
func (id Identity) MayPublish(topic string) bool {
	switch id.Role {
	case RoleProbe:
		site, ok := topics.SiteOf(topic)
		return ok && site == id.Site
	case RoleDiscover:
		return topic == topics.Traffic
	case RoleAdmin:
		return true
	}
	return false
}

// MaySubscribe reports whether the identity may subscribe to filter (or
// receive a message on the topic filter names).
func (id Identity) MaySubscribe(filter string) bool {
	switch id.Role {
	case RoleReader:
		return strings.HasPrefix(filter, topics.Root)
	case RoleAdmin:
		return true
	}
	return false
}

// DerivedPassword is the password of identity under key: HMAC-SHA256 of the
// name, base64url. A broker holding key accepts it without a users file, so
// each component's credential can be issued (`ning broker credential`)
// without the broker keeping a list, and no credential opens another
// identity.
func DerivedPassword(key []byte, identity string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ning-mqtt-v1\x00" + identity))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// certIdentityPrefix marks a URI SAN naming an identity: "ning:probe@dallas".
const certIdentityPrefix = "ning:"

// CertIdentity is the identity a client certificate names: a URI SAN
// "ning:NAME" when it has one, else its subject common name.
func CertIdentity(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, certIdentityPrefix) {
			return ParseIdentity(strings.TrimPrefix(s, certIdentityPrefix))
		}
	}
	return ParseIdentity(cert.Subject.CommonName)
}

// MosquittoACL is the Mosquitto acl_file that gives an external broker the
// same rules as this one for the probers of sites: each probe@SITE writes
// only ning/v1/latency/SITE, discover only ning/v1/traffic, the readers
// read ning/v1/#, and admin has everything. Mosquitto patterns substitute
// the whole username, so each prober has its own block.
func MosquittoACL(sites []string) string {
	var b strings.Builder
	b.WriteString("# ning's topic ACL (ning broker's rules, for Mosquitto's acl_file).\n")
	for _, s := range sites {
		fmt.Fprintf(&b, "user probe@%s\ntopic write %s%s\n", s, topics.LatencyPrefix, s)
	}
	fmt.Fprintf(&b, "user discover\ntopic write %s\n", topics.Traffic)
	for _, r := range []string{"dashboard", "extender", "rescheduler", "scheduler"} {
		fmt.Fprintf(&b, "user %s\ntopic read %s#\n", r, topics.Root)
	}
	b.WriteString("user admin\ntopic readwrite #\n")
	return b.String()
}

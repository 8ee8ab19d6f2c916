package gateway

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// authenticate maps the verified client certificate to a registered
// client. The TLS handshake already refused missing and untrusted
// certificates; a verified but unregistered or disabled one gets 403.
func (s *Server) authenticate(c *gin.Context) {
	cat := s.catalog.Load()
	if cat == nil {
		s.fail(c, mevents.Errorf(mevents.CodeUnavailable, "the service is starting"))
		return
	}
	st := c.Request.TLS
	if st == nil || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		s.fail(c, mevents.Errorf(mevents.CodeUnauthorized, "a verified client certificate is required"))
		return
	}
	cert := st.PeerCertificates[0]
	sum := sha256.Sum256(cert.Raw)
	cl := cat.reg.ClientByCertificate(cert.Subject.String(), hex.EncodeToString(sum[:]))
	if cl == nil {
		s.fail(c, mevents.Errorf(mevents.CodeForbidden, "the client certificate %q is not registered", cert.Subject.String()))
		return
	}
	if cl.Disabled {
		s.fail(c, mevents.Errorf(mevents.CodeForbidden, "client %s is disabled", cl.ID))
		return
	}
	c.Set(keyClient, cl)
	c.Set(keyCatalog, cat)
	c.Next()
}

func clientOf(c *gin.Context) *broker.Client { return c.MustGet(keyClient).(*broker.Client) }

func catalogOf(c *gin.Context) *Catalog { return c.MustGet(keyCatalog).(*Catalog) }

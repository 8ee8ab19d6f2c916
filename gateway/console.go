package gateway

import (
	"embed"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
)

// The operators' console: a page, a script and a style sheet, embedded,
// for admin clients. The script calls the admin API; the page has no
// inline script or style, so that its Content-Security-Policy can forbid
// both.

//go:embed console
var consoleFiles embed.FS

// consoleCSP allows the console's own script, styles and API calls, and
// nothing else: no inline code, no other origin, no framing, no forms
// posted elsewhere.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// consoleRoutes registers /console and its assets, for admin clients.
func (s *Server) consoleRoutes(r *gin.Engine) {
	g := r.Group("/console", s.authenticate, s.requireAdmin)
	g.GET("", s.consoleFile("console/index.html", "text/html; charset=utf-8"))
	g.GET("/console.js", s.consoleFile("console/console.js", "text/javascript; charset=utf-8"))
	g.GET("/console.css", s.consoleFile("console/console.css", "text/css; charset=utf-8"))
}

func (s *Server) consoleFile(name, contentType string) gin.HandlerFunc {
	data, err := consoleFiles.ReadFile(name)
	if err != nil {
		panic("gateway: console file " + name + " not embedded") // a build defect
	}
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		c.Data(http.StatusOK, contentType, data)
	}
}

// sameOrigin refuses state-changing requests (anything but GET, HEAD and
// OPTIONS) that a browser sent from another site (cross-site request
// forgery: a page elsewhere making an admin's browser, which holds the
// admin's client certificate, act). Browsers say where a request comes
// from in Sec-Fetch-Site, and older ones in Origin; clients that are not
// browsers send neither and pass.
func (s *Server) sameOrigin(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		c.Next()
		return
	}
	if site := c.GetHeader("Sec-Fetch-Site"); site != "" {
		if site != "same-origin" && site != "none" {
			s.fail(c, mevents.Errorf(mevents.CodeForbidden, "cross-site request refused (Sec-Fetch-Site: %s)", site))
			return
		}
	} else if origin := c.GetHeader("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Scheme != "https" || !strings.EqualFold(u.Host, c.Request.Host) {
			s.fail(c, mevents.Errorf(mevents.CodeForbidden, "cross-origin request refused (Origin: %s)", origin))
			return
		}
	}
	c.Next()
}

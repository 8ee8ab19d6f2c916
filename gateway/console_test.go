package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/gateway/browsertest"
)

// certFiles writes a client certificate of e's CA for name and returns
// its PEM files.
func (e *consumeEnv) certFiles(name string) (cert, key string) {
	e.t.Helper()
	cert, key, _ = e.pki.ClientFiles(e.t, name)
	return cert, key
}

// TestConsoleHTTP: the console is for admins, with a strict
// Content-Security-Policy, and state-changing requests from other sites
// are refused.
func TestConsoleHTTP(t *testing.T) {
	e := newConsumeEnv(t)
	admin, consumer := e.client("admin"), e.client("consumer")
	for _, path := range []string{"/console", "/console/console.js", "/console/console.css"} {
		if r := e.do(consumer, http.MethodGet, path, nil); r.status != http.StatusForbidden {
			t.Fatalf("GET %s as a non-admin: %d, want 403", path, r.status)
		}
		r := e.do(admin, http.MethodGet, path, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.status)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	if r := e.do(admin, http.MethodGet, "/console", nil); strings.Contains(string(r.body), "<script>") || strings.Contains(string(r.body), "style=") {
		t.Fatal("the console page has inline script or style")
	}

	tests := []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"no browser", nil, http.StatusOK},
		{"same origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.url}, http.StatusOK},
		{"cross site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"same site", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"other origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"same origin, old browser", map[string]string{"Origin": e.url}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPut, e.url+"/v1/admin/maintenance", strings.NewReader(`{"enabled":false,"message":""}`))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := admin.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// TestAudit: admin actions and dead-event actions are in the trail,
// newest first, paged; only admins read it.
func TestAudit(t *testing.T) {
	e := newConsumeEnv(t)
	admin := e.client("admin")
	for _, body := range []string{`{"enabled":true,"message":"upgrade"}`, `{"enabled":false}`} {
		if r := e.do(admin, http.MethodPut, "/v1/admin/maintenance", []byte(body)); r.status != http.StatusOK {
			t.Fatalf("maintenance: %d %s", r.status, r.body)
		}
	}
	if r := e.do(admin, http.MethodDelete, "/v1/admin/clients/consumer/dead-events/99", nil); r.status != http.StatusNotFound {
		t.Fatalf("delete a missing dead event: %d", r.status)
	}
	e.produce(order("a1", "k1"))
	id := e.deadEvent("a1")
	if r := e.do(admin, http.MethodDelete, "/v1/admin/clients/consumer/dead-events/"+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}

	var page struct {
		Items []broker.AuditEntry
		Next  *string
	}
	r := e.do(admin, http.MethodGet, "/v1/admin/audit?limit=2", nil)
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != http.StatusOK {
		t.Fatalf("audit: %d %s", r.status, r.body)
	}
	if len(page.Items) != 2 || page.Next == nil {
		t.Fatalf("page 1 = %+v", page)
	}
	got := page.Items
	r = e.do(admin, http.MethodGet, "/v1/admin/audit?limit=2&cursor="+*page.Next, nil)
	page.Items, page.Next = nil, nil
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != http.StatusOK {
		t.Fatalf("audit page 2: %d %s", r.status, r.body)
	}
	got = append(got, page.Items...)
	want := []broker.AuditEntry{
		{Actor: "admin", Action: broker.AuditDeadDelete, Target: "consumer/" + id},
		{Actor: "admin", Action: broker.AuditMaintenance, Target: "off"},
		{Actor: "admin", Action: broker.AuditMaintenance, Target: "on", Detail: "upgrade"},
	}
	if len(got) != len(want) || page.Next != nil {
		t.Fatalf("trail = %+v, next %v", got, page.Next)
	}
	for i, w := range want {
		g := got[i]
		if g.Actor != w.Actor || g.Action != w.Action || g.Target != w.Target || g.Detail != w.Detail || g.Node != "n1" || g.ID == "" || time.Since(g.Time) > time.Minute {
			t.Fatalf("entry %d = %+v, want %+v", i, g, w)
		}
	}
	if r := e.do(e.client("consumer"), http.MethodGet, "/v1/admin/audit", nil); r.status != http.StatusForbidden {
		t.Fatalf("audit as a non-admin: %d", r.status)
	}
}

// deadEvent consumes the event id by long polling as "consumer" in group
// "console" and reports it dead; it returns the dead event's id.
func (e *consumeEnv) deadEvent(id string) string {
	e.t.Helper()
	c := e.client("consumer")
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, fs := e.poll(c, "group=console&types="+orderType+"&wait=2s")
		for _, f := range fs {
			if f.ID != id {
				continue
			}
			if st, res := e.settle(c, "dead", map[string]any{"ackIds": []string{f.AckID}, "reason": "cannot handle " + id}); st != http.StatusOK || len(res.Succeeded) != 1 {
				e.t.Fatalf("dead: %d %+v", st, res)
			}
			var dead deadList
			r := e.do(e.client("admin"), http.MethodGet, "/v1/admin/clients/consumer/dead-events", nil)
			if err := json.Unmarshal(r.body, &dead); err != nil {
				e.t.Fatal(err)
			}
			for _, d := range dead.Items {
				if strings.Contains(string(d.Event), `"id":"`+id+`"`) {
					return d.ID
				}
			}
			e.t.Fatalf("dead event of %s not listed: %s", id, r.body)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("event %s not delivered", id)
		}
	}
}

// TestConsoleBrowser drives the console in headless Chromium with the
// admin's certificate: the pages load, a produced event shows in its
// type's count, and a dead event redelivered from the console reaches the
// consumer again. A consumer's certificate gets no console.
// MEVENTS_CONSOLE_SCREENSHOTS=DIR writes the pages' screenshots there
// (the README's are in gateway/screenshots: MEVENTS_CONSOLE_SCREENSHOTS=screenshots).
func TestConsoleBrowser(t *testing.T) {
	b := browsertest.New(t)
	e := newConsumeEnv(t)
	shots := os.Getenv("MEVENTS_CONSOLE_SCREENSHOTS")
	shot := func(name string) string {
		if shots == "" {
			return ""
		}
		p, err := filepath.Abs(filepath.Join(shots, "console-"+name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	adminCert, adminKey := e.certFiles("admin")
	run := func(url, script string, input any, screenshot string) json.RawMessage {
		return b.Run(t, browsertest.Page{URL: e.url + url, Origin: e.url, CertFile: adminCert, KeyFile: adminKey,
			Input: input, Script: script, Screenshot: screenshot})
	}
	e.produce(order("o1", "k1"), order("o2", "k2"))
	_ = e.deadEvent("o1")
	dead := e.deadEvent("o2")

	// The cluster page; then the types page counts an event produced
	// while it is open.
	out := run("/console#cluster", `
		await page.waitForSelector('#cluster-nodes tbody tr');
		return await page.textContent('#cluster-summary');`, nil, shot("cluster"))
	var summary string
	if err := json.Unmarshal(out, &summary); err != nil || !strings.Contains(summary, "Answered by n1") || !strings.Contains(summary, "ready") {
		t.Fatalf("cluster summary %s", out)
	}
	// The script asks this server to produce once the page shows the
	// count: the page's next refresh shows one more.
	produced := make(chan struct{}, 1)
	trigger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.produce(order("o3", "k3"))
		produced <- struct{}{}
	}))
	defer trigger.Close()
	out = run("/console#types", `
		const count = () => page.evaluate((t) => {
			const tr = [...document.querySelectorAll('#types tbody tr')].find((tr) => tr.cells[0].textContent === t);
			return tr ? Number(tr.cells[2].textContent) : -1;
		}, input.type);
		await page.waitForFunction((t) => [...document.querySelectorAll('#types tbody tr')].some((tr) => tr.cells[0].textContent === t), input.type);
		const before = await count();
		await fetch(input.produce);
		await page.waitForFunction(([t, n]) => [...document.querySelectorAll('#types tbody tr')]
			.some((tr) => tr.cells[0].textContent === t && Number(tr.cells[2].textContent) > n), [input.type, before], { timeout: 20000 });
		return [before, await count()];`, map[string]any{"type": orderType, "produce": trigger.URL}, shot("types"))
	<-produced
	var counts []int
	if err := json.Unmarshal(out, &counts); err != nil || len(counts) != 2 || counts[0] != 2 || counts[1] != 3 {
		t.Fatalf("event counts before and after producing: %s, want [2,3]", out)
	}

	// The groups page shows the consumer's group with its instance gone
	// and its backlog.
	out = run("/console#groups", `
		await page.waitForSelector('#groups tbody tr');
		return await page.textContent('#groups tbody');`, nil, shot("groups"))
	if !strings.Contains(string(out), "console") || !strings.Contains(string(out), orderType) {
		t.Fatalf("groups page: %s", out)
	}

	// Redeliver a dead event from the console; the consumer gets it again.
	out = run("/console#dead", `
		page.on('dialog', (d) => d.accept());
		await page.fill('#dead-client', 'consumer');
		await page.click('#dead-form button[type=submit]');
		const row = page.locator('#dead tbody tr[data-id="' + input.id + '"]');
		await row.getByRole('button', { name: 'View' }).click();
		const shown = await page.textContent('#dead-event');
		await row.getByRole('button', { name: 'Redeliver' }).click();
		await row.waitFor({ state: 'detached' });
		return shown;`, map[string]any{"id": dead}, shot("dead"))
	var view string
	if err := json.Unmarshal(out, &view); err != nil || !strings.Contains(view, "cannot handle o2") || !strings.Contains(view, `"id": "o2"`) {
		t.Fatalf("dead event view: %s", out)
	}
	c := e.client("consumer")
	deadline := time.Now().Add(20 * time.Second)
	for redelivered := false; !redelivered; {
		_, fs := e.poll(c, "group=console&types="+orderType+"&wait=2s")
		for _, f := range fs {
			redelivered = redelivered || f.ID == "o2"
			e.settle(c, "ack", map[string]any{"ackIds": []string{f.AckID}})
		}
		if !redelivered && time.Now().After(deadline) {
			t.Fatal("the dead event redelivered from the console did not reach the consumer")
		}
	}
	// The audit page shows the redelivery.
	out = run("/console#audit", `
		await page.waitForSelector('#audit tbody tr');
		return await page.textContent('#audit tbody');`, nil, shot("audit"))
	if !strings.Contains(string(out), "dead.redeliver") || !strings.Contains(string(out), "consumer/"+dead) {
		t.Fatalf("audit page: %s", out)
	}

	// A consumer's certificate: 403, no console.
	consumerCert, consumerKey := e.certFiles("consumer")
	out = b.Run(t, browsertest.Page{Origin: e.url, CertFile: consumerCert, KeyFile: consumerKey, Input: e.url + "/console", Script: `
		const r = await page.goto(input);
		return [r.status(), await page.locator('#page-cluster').count()];`})
	if string(out) != "[403,0]" {
		t.Fatalf("the console for a consumer: %s, want [403,0]", out)
	}
}

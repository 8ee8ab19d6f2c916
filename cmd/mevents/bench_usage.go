package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// nodeUsage is what the nodes' ops listeners report of their processes.
type nodeUsage struct {
	CPU     float64   // CPU seconds, summed over the nodes
	NodeCPU []float64 // CPU seconds of each node
	RSS     []float64 // resident bytes of each node
}

// usageWindow is the nodes' CPU over a measurement window.
type usageWindow struct {
	CPU     float64   // CPU seconds of all nodes in the window
	NodeCPU []float64 // CPU seconds of each node in the window
	Window  time.Duration
	Events  int64     // events produced in the window
	RSS     []float64 // each node's resident bytes at its end
	// Self is the CPU the bench process used in the window, when
	// measured (SelfKnown): on one machine with the nodes, the load
	// generator's own share.
	Self      time.Duration
	SelfKnown bool
}

// cores is the CPU the nodes used, in cores.
func (u *usageWindow) cores() float64 { return u.CPU / u.Window.Seconds() }

// selfCores is the CPU the bench process used in the window, in cores.
func (u *usageWindow) selfCores() float64 { return u.Self.Seconds() / u.Window.Seconds() }

// perEvent is the nodes' CPU per event produced.
func (u *usageWindow) perEvent() time.Duration {
	if u.Events == 0 {
		return 0
	}
	return time.Duration(u.CPU / float64(u.Events) * float64(time.Second)).Round(time.Microsecond)
}

// usageFigures formats the nodes' CPU (cores of all, and of each when
// there are several) and each node's resident memory (MiB) in u, or their
// differences from base when base is not nil.
func usageFigures(u, base *usageWindow) (cpu, mem string) {
	total, nodes, rss := u.perNode()
	cpuFormat, memFormat := "%.3f", "%.0f"
	if base != nil {
		bTotal, bNodes, bRSS := base.perNode()
		total -= bTotal
		for i := range min(len(nodes), len(bNodes)) {
			nodes[i] -= bNodes[i]
		}
		for i := range min(len(rss), len(bRSS)) {
			rss[i] -= bRSS[i]
		}
		cpuFormat, memFormat = "%+.3f", "%+.1f"
	}
	list := func(v []float64, format string) string {
		s := make([]string, len(v))
		for i, f := range v {
			s[i] = fmt.Sprintf(format, f)
		}
		return strings.Join(s, ", ")
	}
	cpu = fmt.Sprintf(cpuFormat, total) + " cores"
	if len(nodes) > 1 {
		cpu += " (" + list(nodes, cpuFormat) + ")"
	}
	return cpu, list(rss, memFormat) + " MiB"
}

// perNode is the cores of all nodes and of each in the window, and each
// node's resident MiB.
func (u *usageWindow) perNode() (total float64, nodes, mib []float64) {
	for _, s := range u.NodeCPU {
		nodes = append(nodes, s/u.Window.Seconds())
	}
	for _, b := range u.RSS {
		mib = append(mib, b/(1<<20))
	}
	return u.cores(), nodes, mib
}

// usageMeter measures the nodes' CPU over a window through their ops
// listeners' /metrics (process_cpu_seconds_total, in steps of 10 ms). A
// nil meter measures nothing.
type usageMeter struct {
	urls      []string
	start     nodeUsage
	self      time.Duration // the bench process's CPU at the start
	selfKnown bool
	at        time.Time
	err       error
}

func newUsageMeter(ctx context.Context, urls []string) *usageMeter {
	if len(urls) == 0 {
		return nil
	}
	m := &usageMeter{urls: urls, at: time.Now()}
	m.self, m.selfKnown = processCPU()
	m.start, m.err = scrapeUsage(ctx, urls)
	return m
}

// end returns the window from the meter's start to now, with the events
// produced in it; nil without a meter or when a node did not answer.
func (m *usageMeter) end(ctx context.Context, events int64, progress io.Writer) *usageWindow {
	if m == nil {
		return nil
	}
	u, err := scrapeUsage(ctx, m.urls)
	if err = errors.Join(m.err, err); err != nil {
		fmt.Fprintf(progress, "node CPU not measured: %v\n", err)
		return nil
	}
	w := &usageWindow{CPU: u.CPU - m.start.CPU, Window: time.Since(m.at), Events: events, RSS: u.RSS}
	if self, ok := processCPU(); ok && m.selfKnown {
		w.Self, w.SelfKnown = self-m.self, true
	}
	for i, cpu := range u.NodeCPU {
		w.NodeCPU = append(w.NodeCPU, cpu-m.start.NodeCPU[i])
	}
	return w
}

// scrapeUsage reads each node's CPU seconds and resident memory from the
// /metrics of its ops listener (base URL, http://host:port).
func scrapeUsage(ctx context.Context, urls []string) (nodeUsage, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var u nodeUsage
	for _, base := range urls {
		cpu, rss, err := scrapeNode(ctx, base+"/metrics")
		if err != nil {
			return u, fmt.Errorf("%s: %w", base, err)
		}
		u.CPU += cpu
		u.NodeCPU = append(u.NodeCPU, cpu)
		u.RSS = append(u.RSS, rss)
	}
	return u, nil
}

func scrapeNode(ctx context.Context, url string) (cpu, rss float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		var dst *float64
		switch {
		case !ok:
			continue
		case name == "process_cpu_seconds_total":
			dst = &cpu
		case name == "process_resident_memory_bytes":
			dst = &rss
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(value, 64); err != nil {
			return 0, 0, fmt.Errorf("/metrics: %s: %w", name, err)
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found < 2 {
		return 0, 0, fmt.Errorf("/metrics has no process_cpu_seconds_total and process_resident_memory_bytes")
	}
	return cpu, rss, nil
}

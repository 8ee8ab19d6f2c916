package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// summaryHeader heads the markdown table that --summary rows go into.
const summaryHeader = `| scenario | produce | delivered | end-to-end p50 / p90 / p99 | request p50 / p99 | errors | CPU an event | raw | raw CPU an event | gateway/raw |
|---|---|---|---|---|---|---|---|---|---|
`

// idleSummaryHeader heads the table of --summary rows of idle runs
// (--idle-groups), whose figures are not those of the throughput runs.
const idleSummaryHeader = `| idle scenario | join p50 / p99 / max | join failures | nodes at baseline | connected − baseline | a connected group | disconnected − baseline |
|---|---|---|---|---|---|---|
`

// appendSummary appends the report's row to the markdown table in file,
// so that runs one after another (scripts/bench.sh) build one table.
func appendSummary(file string, r *benchReport) error {
	return appendRow(file, summaryHeader, r.row())
}

// appendIdleSummary appends the idle run's row to the idle table in file.
func appendIdleSummary(file string, r *idleReport) error {
	return appendRow(file, idleSummaryHeader, r.row())
}

// appendRow appends row to the markdown table that header heads in file,
// writing the header first when the file is new or empty, or when its
// last table is another (a run of the other kind came last): after a
// blank line, a new table.
func appendRow(file, header, row string) error {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	switch {
	case err != nil:
	case len(b) == 0:
		_, err = f.WriteString(header)
	case lastHeader(string(b)) != header:
		_, err = f.WriteString("\n" + header)
	}
	if err == nil {
		_, err = f.WriteString(row + "\n")
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// lastHeader is the header of the last markdown table in text, its two
// lines, or "" without one.
func lastHeader(text string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i > 0; i-- {
		if strings.HasPrefix(lines[i], "|---") {
			return lines[i-1] + "\n" + lines[i] + "\n"
		}
	}
	return ""
}

// row is the idle run as one row of the idle summary table; a figure not
// measured is "–".
func (r *idleReport) row() string {
	ic := r.Config
	scenario := fmt.Sprintf("%s, %s, %s, %d joining at once, windows of %s",
		count(ic.Groups, "idle group"), count(len(r.Types), "type"), count(r.APIs, "API"), ic.Joins, ic.Window)
	failures := strconv.Itoa(r.Failed)
	if r.Dropped > 0 {
		failures += fmt.Sprintf(", %d dropped", r.Dropped)
	}
	cells := []string{
		scenario,
		shortDuration(r.Join.q(0.5)) + " / " + shortDuration(r.Join.q(0.99)) + " / " + shortDuration(r.Join.q(1)),
		failures,
		"–", "–", "–", "–",
	}
	figures := func(u, base *usageWindow) string {
		cpu, mem := usageFigures(u, base)
		return cpu + "; " + mem
	}
	if r.Baseline != nil {
		cells[3] = figures(r.Baseline, nil)
		if r.Connected != nil {
			cells[4] = figures(r.Connected, r.Baseline)
		}
		if mc, kib, ok := r.perGroup(); ok {
			cells[5] = fmt.Sprintf("%+.2f millicores, %+.0f KiB", mc, kib)
		}
		if r.Disconnected != nil {
			cells[6] = figures(r.Disconnected, r.Baseline)
		}
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

// perGroup is what one connected group added to all nodes: millicores and
// KiB of resident memory over the baseline.
func (r *idleReport) perGroup() (millicores, kib float64, ok bool) {
	if r.Baseline == nil || r.Connected == nil || len(r.Join) == 0 {
		return 0, 0, false
	}
	var rss float64
	for i := range min(len(r.Connected.RSS), len(r.Baseline.RSS)) {
		rss += r.Connected.RSS[i] - r.Baseline.RSS[i]
	}
	n := float64(len(r.Join))
	return (r.Connected.cores() - r.Baseline.cores()) * 1000 / n, rss / 1024 / n, true
}

// row is the report as one row of the summary table; a figure not
// measured is "–".
func (r *benchReport) row() string {
	c := r.Config
	scenario := fmt.Sprintf("%s, batches of %d, %d B, %d keys, %s", count(c.Producers, "producer"), c.Batch, c.Size, c.Keys, count(c.Consumers, "consumer"))
	if c.Rate > 0 {
		scenario += ", " + thousands(float64(c.Rate)) + " events/s offered"
	}
	cells := []string{
		scenario,
		thousands(r.ProduceRate) + " events/s",
		"–", "–",
		shortDuration(r.Request.q(0.5)) + " / " + shortDuration(r.Request.q(0.99)),
		strconv.FormatInt(r.Errors, 10),
		"–", "–", "–", "–",
	}
	if c.Consumers > 0 {
		cells[2] = thousands(r.DeliveredRate) + " events/s"
		cells[3] = shortDuration(r.EndToEnd.q(0.5)) + " / " + shortDuration(r.EndToEnd.q(0.9)) + " / " + shortDuration(r.EndToEnd.q(0.99))
	}
	if u := r.Usage; u != nil {
		cells[6] = shortDuration(u.perEvent())
	}
	if raw := r.Raw; raw != nil {
		consumed := raw.Consumed > 0
		switch {
		case c.Rate > 0 && consumed:
			cells[7] = "end to end " + shortDuration(raw.EndToEnd.q(0.5)) + " / " + shortDuration(raw.EndToEnd.q(0.9)) + " / " + shortDuration(raw.EndToEnd.q(0.99)) +
				"; request " + shortDuration(raw.PublishedLatency.q(0.5)) + " / " + shortDuration(raw.PublishedLatency.q(0.99))
		case c.Rate > 0:
			cells[7] = "request " + shortDuration(raw.PublishLatency.q(0.5)) + " / " + shortDuration(raw.PublishLatency.q(0.99))
		case consumed:
			cells[7] = thousands(raw.Published) + " published, " + thousands(raw.Consumed) + " consumed"
			cells[9] = fmt.Sprintf("%.2f", min(r.ProduceRate, r.DeliveredRate)/min(raw.Published, raw.Consumed))
		default:
			cells[7] = thousands(raw.Publish) + " published"
			cells[9] = fmt.Sprintf("%.2f", r.ProduceRate/raw.Publish)
		}
		// The raw phase that matches the scenario: with consumers, publishing
		// and consuming at once.
		u := raw.PublishUsage
		if consumed {
			u = raw.PublishedUsage
		}
		if u != nil {
			cells[8] = shortDuration(u.perEvent())
		}
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

// count is n and the noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// thousands formats a rate rounded to a whole number, with commas between
// thousands: 12345.6 is "12,346".
func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// shortDuration formats a latency with three significant figures at most,
// in µs, ms or s: 412 ms, 9.04 ms, 1.7 s.
func shortDuration(d time.Duration) string {
	v, unit := float64(d)/float64(time.Microsecond), "µs"
	for _, next := range []string{"ms", "s"} {
		if v < 999.5 {
			break
		}
		v, unit = v/1000, next
	}
	if v >= 999.5 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + " " + unit
}

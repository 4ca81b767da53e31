package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The charts are drawn with gonum/plot, a maintained plotting library,
// rather than hand-written SVG: axes, log scales, ticks and legends are its
// job. Every chart uses log scales, since the contenders span three orders
// of magnitude.

// writeCharts writes the report's charts into dir and returns their file
// names (for the markdown).
func writeCharts(r *report, dir string) ([]string, error) {
	var names []string
	write := func(name string, c *vgsvg.Canvas) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(f); err != nil {
			f.Close()
			return err
		}
		names = append(names, name)
		return f.Close()
	}
	if len(r.Contended) > 0 {
		if err := write("throughput.svg", contendedChart(r, false)); err != nil {
			return nil, err
		}
		if err := write("latency.svg", contendedChart(r, true)); err != nil {
			return nil, err
		}
	}
	if len(r.Uncontended) > 0 {
		var rows []dot
		for _, u := range r.Uncontended {
			if u.Unavailable == "" {
				rows = append(rows, dot{u.Contender, u.NsOp})
			}
		}
		c := dotChart(r, [][]dot{rows}, []string{"Uncontended lock+unlock"}, []string{"per lock+unlock (log)"})
		if err := write("uncontended.svg", c); err != nil {
			return nil, err
		}
	}
	if len(r.Handoff) > 0 || len(r.Recovery) > 0 {
		var ho, rec []dot
		for _, h := range r.Handoff {
			if h.Unavailable == "" {
				ho = append(ho, dot{h.Contender, h.Median})
			}
		}
		for _, h := range r.Recovery {
			if h.Unavailable == "" {
				rec = append(rec, dot{h.Contender, h.Latency})
			}
		}
		c := dotChart(r, [][]dot{ho, rec},
			[]string{"Hand-off: unlock to lock returning in another process", "Recovery: SIGKILL of holder to next lock returning"},
			[]string{"median of reps; bar: min–max (log)", "median of kills; bar: min–max (log)"})
		if err := write("handoff-recovery.svg", c); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func machineLabel(r *report) string {
	m := r.Machine
	return fmt.Sprintf("%s, %d cores, Linux %s, %s, glibc %s; %d reps",
		m.CPU, m.Cores, m.Kernel, m.Go, m.Glibc, r.Reps)
}

// errPoints are x, y points with asymmetric y error bars (min–max).
type errPoints []struct{ x, y, lo, hi float64 }

func (e errPoints) Len() int                        { return len(e) }
func (e errPoints) XY(i int) (float64, float64)     { return e[i].x, e[i].y }
func (e errPoints) YError(i int) (float64, float64) { return e[i].y - e[i].lo, e[i].hi - e[i].y }
func (e errPoints) XError(i int) (float64, float64) { return e[i].x - e[i].lo, e[i].hi - e[i].x }

// contendedChart draws one panel per critical section (throughput), or
// two per critical section (p50 and p99 wait), each with a line per
// series against processes, and a shared legend on the right.
func contendedChart(r *report, latency bool) *vgsvg.Canvas {
	var names []string
	seen := map[string]bool{}
	xs := map[int]bool{}
	for _, c := range r.Contended {
		if c.Unavailable == "" && !seen[c.Series] {
			seen[c.Series] = true
			names = append(names, c.Series)
		}
		xs[c.X] = true
	}
	type panel struct {
		title, ylabel string
		val           func(conRow) summary
		scale         float64
	}
	var panels [][]panel
	for _, cs := range r.CS {
		if latency {
			panels = append(panels, []panel{
				{fmt.Sprintf("p50 wait, critical section %s", csName(cs)), "wait (log)", func(c conRow) summary { return c.P50 }, 1},
				{fmt.Sprintf("p99 wait, critical section %s", csName(cs)), "wait (log)", func(c conRow) summary { return c.P99 }, 1},
			})
		} else {
			panels = append(panels, []panel{{fmt.Sprintf("Throughput, critical section %s", csName(cs)),
				"M lock+unlock/s (log)", func(c conRow) summary { return c.Throughput }, 1e-6}})
		}
	}
	rows, cols := len(panels), len(panels[0])
	w, h := vg.Length(cols)*5*vg.Inch+2.2*vg.Inch, vg.Length(rows)*3.6*vg.Inch+0.4*vg.Inch
	canvas := vgsvg.New(w, h)
	dc := draw.New(canvas)
	title := plot.New()
	title.Title.Text = machineLabel(r)
	header := draw.Crop(dc, 0, 0, h-0.4*vg.Inch, 0)
	title.Title.TextStyle.Font.Size = 9
	drawTitle(header, title)
	body := draw.Crop(dc, 0, -2.2*vg.Inch, 0, -0.4*vg.Inch)
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.TextStyle.Font.Size = vg.Points(11)
	plots := make([][]*plot.Plot, rows)
	for i, row := range panels {
		plots[i] = make([]*plot.Plot, cols)
		for j, pn := range row {
			p := plot.New()
			p.Title.Text = pn.title
			p.X.Label.Text = "processes (one-process series: goroutines)"
			p.Y.Label.Text = pn.ylabel
			p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
			p.X.Tick.Marker = xTicks(xs)
			p.Y.Tick.Marker = logTicks{ns: latency}
			p.Add(plotter.NewGrid())
			lo, hi := math.Inf(1), math.Inf(-1)
			for k, name := range names {
				var pts errPoints
				for _, c := range r.Contended {
					if c.Series != name || c.CS != r.CS[i] || c.Unavailable != "" {
						continue
					}
					s := pn.val(c)
					if !(s.Median > 0 && s.Min > 0) {
						continue
					}
					pts = append(pts, struct{ x, y, lo, hi float64 }{float64(c.X), s.Median * pn.scale,
						s.Min * pn.scale, s.Max * pn.scale})
				}
				if len(pts) == 0 {
					continue
				}
				for _, pt := range pts {
					lo, hi = math.Min(lo, pt.lo), math.Max(hi, pt.hi)
				}
				l, sc, err := plotter.NewLinePoints(pts)
				if err != nil {
					continue
				}
				col := palette[k%len(palette)]
				l.Color, sc.Color = col, col
				sc.Shape = plotutil.Shape(k)
				if k >= 6 {
					l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
				}
				p.Add(l, sc)
				if eb, err := plotter.NewYErrorBars(pts); err == nil {
					eb.Color = col
					p.Add(eb)
				}
				if i == 0 && j == 0 {
					legend.Add(name, l, sc)
				}
			}
			if lo < hi {
				p.Y.Min, p.Y.Max = lo/1.25, hi*1.25
			}
			plots[i][j] = p
		}
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Inch / 3, PadY: vg.Inch / 3,
		PadTop: vg.Inch / 10, PadLeft: vg.Inch / 10, PadRight: vg.Inch / 10, PadBottom: vg.Inch / 10}
	cs := plot.Align(plots, tiles, body)
	for i := range plots {
		for j := range plots[i] {
			plots[i][j].Draw(cs[i][j])
		}
	}
	legend.Draw(draw.Crop(dc, w-2.1*vg.Inch, 0, 0, -0.6*vg.Inch))
	return canvas
}

func drawTitle(c draw.Canvas, p *plot.Plot) {
	sty := p.Title.TextStyle
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	c.FillText(sty, vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: (c.Min.Y + c.Max.Y) / 2}, p.Title.Text)
}

// xTicks labels exactly the process counts measured.
func xTicks(xs map[int]bool) plot.ConstantTicks {
	var ts plot.ConstantTicks
	for x := 1; x <= 1<<20; x *= 2 {
		if xs[x] {
			ts = append(ts, plot.Tick{Value: float64(x), Label: strconv.Itoa(x)})
		}
	}
	for x := range xs {
		if x&(x-1) != 0 {
			ts = append(ts, plot.Tick{Value: float64(x), Label: strconv.Itoa(x)})
		}
	}
	return ts
}

// dot is one labelled figure with its spread.
type dot struct {
	name string
	s    summary
}

// dotChart draws panels of horizontal dot plots (a dot at the median, a
// bar from min to max) on a log axis: bar charts cannot start at zero on
// a log scale, and these figures span three orders of magnitude.
func dotChart(r *report, sets [][]dot, titles, xlabels []string) *vgsvg.Canvas {
	w, h := vg.Length(len(sets))*5.5*vg.Inch, 3.2*vg.Inch+0.4*vg.Inch
	canvas := vgsvg.New(w, h)
	dc := draw.New(canvas)
	title := plot.New()
	title.Title.Text = machineLabel(r)
	title.Title.TextStyle.Font.Size = 9
	drawTitle(draw.Crop(dc, 0, 0, h-0.4*vg.Inch, 0), title)
	body := draw.Crop(dc, 0, 0, 0, -0.4*vg.Inch)
	plots := [][]*plot.Plot{make([]*plot.Plot, len(sets))}
	for i, set := range sets {
		p := plot.New()
		p.Title.Text = titles[i]
		p.X.Label.Text = xlabels[i]
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{ns: true}
		p.Add(plotter.NewGrid())
		var names []string
		var pts errPoints
		for k, d := range set {
			if !(d.s.Median > 0 && d.s.Min > 0) {
				continue
			}
			names = append(names, d.name)
			pts = append(pts, struct{ x, y, lo, hi float64 }{d.s.Median, float64(k), d.s.Min, d.s.Max})
		}
		// NominalY places name k at y = k; keep them aligned with the points.
		for k := range pts {
			pts[k].y = float64(k)
		}
		if len(pts) > 0 {
			sc, err := plotter.NewScatter(pts)
			if err == nil {
				sc.Color = color.RGBA{R: 0x1f, G: 0x4e, B: 0x9a, A: 0xff}
				sc.Shape = draw.CircleGlyph{}
				sc.Radius = vg.Points(3.5)
				p.Add(sc)
			}
			if eb, err := plotter.NewXErrorBars(xerr(pts)); err == nil {
				p.Add(eb)
			}
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, pt := range pts {
				lo, hi = math.Min(lo, pt.lo), math.Max(hi, pt.hi)
			}
			p.X.Min, p.X.Max = lo/1.5, hi*1.5
		}
		p.NominalY(names...)
		plots[0][i] = p
	}
	tiles := draw.Tiles{Rows: 1, Cols: len(sets), PadX: vg.Inch / 2,
		PadTop: vg.Inch / 10, PadLeft: vg.Inch / 10, PadRight: vg.Inch / 5, PadBottom: vg.Inch / 10}
	cs := plot.Align(plots, tiles, body)
	for i := range plots[0] {
		plots[0][i].Draw(cs[0][i])
	}
	return canvas
}

// xerr views points with their error bars on the x axis.
type xerr errPoints

func (e xerr) Len() int                        { return len(e) }
func (e xerr) XY(i int) (float64, float64)     { return e[i].x, e[i].y }
func (e xerr) XError(i int) (float64, float64) { return e[i].x - e[i].lo, e[i].hi - e[i].x }

// palette tells nine series apart (plotutil's repeats after seven).
var palette = []color.Color{
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, // robustlock: red
	color.RGBA{0x1f, 0x77, 0xb4, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x94, 0x67, 0xbd, 0xff},
	color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0xe3, 0x77, 0xc2, 0xff},
	color.RGBA{0xbc, 0xbd, 0x22, 0xff},
	color.RGBA{0x17, 0xbe, 0xcf, 0xff},
	color.RGBA{0x7f, 0x7f, 0x7f, 0xff},
}

// logTicks marks 1, 2 and 5 times each power of ten, labelled, with
// unlabelled minor ticks between; ns labels use ns, µs, ms.
type logTicks struct{ ns bool }

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	if !(lo > 0) || !(hi > lo) {
		return ts
	}
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		d := math.Pow(10, e)
		for m := 1; m <= 9; m++ {
			v := float64(m) * d
			if v < lo || v > hi {
				continue
			}
			tk := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				tk.Label = t.label(v)
			}
			ts = append(ts, tk)
		}
	}
	return ts
}

func (t logTicks) label(v float64) string {
	if !t.ns {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	switch {
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', -1, 64) + " s"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', -1, 64) + " ms"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', -1, 64) + " µs"
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + " ns"
}

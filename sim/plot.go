package sim

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strings"
	"unicode"
)

// A plot of one run, or of several policies on one day: power (top panel)
// and active hosts (bottom panel; with one run, also the overloaded hosts)
// over the simulated day. Two formats from the same layout: SVG written by
// hand, PNG drawn pixel by pixel with a built-in 5×7 font, so neither needs
// a dependency.

const (
	plotW, plotH   = 960, 560
	plotLeft       = 70
	plotRight      = 20
	panelTop1      = 40
	panelH         = 200
	panelGap       = 70
	panelTop2      = panelTop1 + panelH + panelGap
	plotTickCount  = 5
	plotHoursTicks = 4 // every 4 hours
)

type series struct {
	label string
	color uint32
	y     []float64
}

type panel struct {
	title string
	top   int
	ymax  float64
	lines []series
}

type layout struct {
	title  string
	hours  []float64
	panels []panel
}

// Colours, 0xRRGGBB.
const (
	colPower  = 0xc0392b
	colActive = 0x2980b9
	colOver   = 0xe67e22
	colAxis   = 0x444444
	colGrid   = 0xdddddd
	colText   = 0x222222
)

func rgb(c uint32) color.RGBA { return color.RGBA{uint8(c >> 16), uint8(c >> 8), uint8(c), 0xff} }

// policyColor colours the i-th policy of a comparison.
func policyColor(i int) uint32 {
	return [...]uint32{0xc0392b, 0x2980b9, 0x27ae60, 0x8e44ad, 0xe67e22, 0x16a085, 0x7f8c8d, 0xd35400}[i%8]
}

// transientSeconds is the start of the day the y-axes leave out: the
// initial placement runs every host at once for a step or two, and that
// spike would flatten the rest of the day. A value above the axis is drawn
// at its top.
const transientSeconds = 3600

func newLayout(rs []*Result) layout {
	r := rs[0]
	var l layout
	if len(rs) == 1 {
		l.title = fmt.Sprintf("%s on %s (%s mode): %.2f kWh, %d migrations", r.Policy, dayName(r.Day), r.Mode, r.EnergyKWh, r.Migrations)
	} else {
		l.title = fmt.Sprintf("%d policies on %s (%s mode)", len(rs), dayName(r.Day), r.Mode)
	}
	for _, s := range r.Series {
		l.hours = append(l.hours, s.Time/3600)
	}
	maxP, maxH := 0.0, 0.0
	var power, hosts []series
	for i, r := range rs {
		p := make([]float64, len(r.Series))
		active := make([]float64, len(r.Series))
		over := make([]float64, len(r.Series))
		for k, s := range r.Series {
			p[k] = s.PowerW / 1000
			active[k] = float64(s.ActiveHosts)
			over[k] = float64(s.OverloadedHosts)
			if s.Time >= transientSeconds || len(r.Series) == 1 {
				maxP = max(maxP, p[k])
				maxH = max(maxH, active[k], over[k])
			}
		}
		if len(rs) == 1 {
			power = []series{{"power", colPower, p}}
			hosts = []series{{"active", colActive, active}, {"overloaded", colOver, over}}
			break
		}
		c := policyColor(i)
		label := fmt.Sprintf("%s %.1f kWh", r.Policy, r.EnergyKWh)
		power = append(power, series{label, c, p})
		hosts = append(hosts, series{r.Policy, c, active})
	}
	title := "hosts: active, overloaded"
	if len(rs) > 1 {
		title = "active hosts"
	}
	l.panels = []panel{
		{title: "power (kW)", top: panelTop1, ymax: niceMax(maxP), lines: power},
		{title: title, top: panelTop2, ymax: niceMax(maxH), lines: hosts},
	}
	return l
}

func dayName(dir string) string {
	dir = strings.TrimRight(dir, "/")
	if i := strings.LastIndexAny(dir, `/\`); i >= 0 {
		return dir[i+1:]
	}
	return dir
}

// niceMax rounds v up to 1, 2 or 5 × a power of ten, so ticks are round.
func niceMax(v float64) float64 {
	if !(v > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func (l *layout) x(h float64) float64 {
	return plotLeft + h/24*float64(plotW-plotLeft-plotRight)
}

// y places v in the panel; a value above the axis (the start-up
// transient) is drawn at the top.
func (p *panel) y(v float64) float64 {
	return float64(p.top+panelH) - min(v, p.ymax)/p.ymax*panelH
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}

// WriteSVG draws the plot of one run, or of several runs of one day on
// the same axes, as SVG.
func WriteSVG(w io.Writer, rs ...*Result) error {
	if len(rs) == 0 {
		return fmt.Errorf("plot: no run")
	}
	l := newLayout(rs)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" fill="%s">%s</text>`+"\n", plotLeft, hex(colText), xmlEscape(l.title))
	for _, p := range l.panels {
		x0, x1 := l.x(0), l.x(24)
		for k := 0; k <= plotTickCount; k++ {
			v := p.ymax * float64(k) / plotTickCount
			y := p.y(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x0, y, x1, y, hex(colGrid))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", x0-6, y+4, hex(colText), fmtTick(v))
		}
		for h := 0; h <= 24; h += plotHoursTicks {
			x := l.x(float64(h))
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, p.top, x, p.top+panelH, hex(colGrid))
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%dh</text>`+"\n", x, p.top+panelH+16, hex(colText), h)
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="none" stroke="%s"/>`+"\n", x0, p.top, x1-x0, panelH, hex(colAxis))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s">%s</text>`+"\n", x0, p.top-6, hex(colText), xmlEscape(p.title))
		for i, s := range p.lines {
			var pts strings.Builder
			for k, v := range s.y[:min(len(s.y), len(l.hours))] {
				fmt.Fprintf(&pts, "%.1f,%.1f ", l.x(l.hours[k]), p.y(v))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", hex(s.color), strings.TrimSpace(pts.String()))
			lx := x1 - 190
			ly := float64(p.top + 14 + 14*i)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+18, ly-4, hex(s.color))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", lx+24, ly, hex(colText), xmlEscape(s.label))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func hex(c uint32) string { return fmt.Sprintf("#%06x", c) }

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// WritePNG draws the plot of one run, or of several runs of one day on
// the same axes, as PNG.
func WritePNG(w io.Writer, rs ...*Result) error {
	if len(rs) == 0 {
		return fmt.Errorf("plot: no run")
	}
	l := newLayout(rs)
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	drawText(img, plotLeft, 10, l.title, colText, 2)
	for _, p := range l.panels {
		x0, x1 := int(l.x(0)), int(l.x(24))
		for k := 0; k <= plotTickCount; k++ {
			v := p.ymax * float64(k) / plotTickCount
			y := int(math.Round(p.y(v)))
			drawLine(img, x0, y, x1, y, colGrid)
			t := fmtTick(v)
			drawText(img, x0-6-textWidth(t, 1), y-3, t, colText, 1)
		}
		for h := 0; h <= 24; h += plotHoursTicks {
			x := int(math.Round(l.x(float64(h))))
			drawLine(img, x, p.top, x, p.top+panelH, colGrid)
			t := fmt.Sprintf("%dh", h)
			drawText(img, x-textWidth(t, 1)/2, p.top+panelH+8, t, colText, 1)
		}
		drawLine(img, x0, p.top, x1, p.top, colAxis)
		drawLine(img, x0, p.top+panelH, x1, p.top+panelH, colAxis)
		drawLine(img, x0, p.top, x0, p.top+panelH, colAxis)
		drawLine(img, x1, p.top, x1, p.top+panelH, colAxis)
		drawText(img, x0, p.top-12, p.title, colText, 1)
		for i, s := range p.lines {
			for k := 1; k < min(len(s.y), len(l.hours)); k++ {
				drawLine(img, int(math.Round(l.x(l.hours[k-1]))), int(math.Round(p.y(s.y[k-1]))),
					int(math.Round(l.x(l.hours[k]))), int(math.Round(p.y(s.y[k]))), s.color)
			}
			lx, ly := x1-190, p.top+10+14*i
			for d := 0; d < 2; d++ {
				drawLine(img, lx, ly+3+d, lx+18, ly+3+d, s.color)
			}
			drawText(img, lx+24, ly, s.label, colText, 1)
		}
	}
	return png.Encode(w, img)
}

func drawLine(img *image.RGBA, x0, y0, x1, y1 int, col uint32) {
	c := rgb(col)
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	err := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// drawText writes s with the 5×7 font, top-left at (x, y); characters the
// font lacks are left blank.
func drawText(img *image.RGBA, x, y int, s string, col uint32, scale int) {
	c := rgb(col)
	for _, r := range s {
		g, ok := glyph(r)
		if !ok {
			g, ok = glyph(unicode.ToLower(r))
		}
		if ok {
			for row := 0; row < 7; row++ {
				for col := 0; col < 5; col++ {
					if g[row]&(1<<(4-col)) == 0 {
						continue
					}
					for a := 0; a < scale; a++ {
						for b := 0; b < scale; b++ {
							img.SetRGBA(x+col*scale+a, y+row*scale+b, c)
						}
					}
				}
			}
		}
		x += 6 * scale
	}
}

// glyph is a 5×7 bitmap, one byte a row, bit 4 the leftmost pixel.
func glyph(r rune) ([7]byte, bool) {
	const chars = "0123456789abcdefghijklmnopqrstuvwxyz.,:-()%=/+_KW"
	i := strings.IndexRune(chars, r)
	if i < 0 {
		return [7]byte{}, false
	}
	// Rows of each glyph, in the order of chars.
	font := [...][7]byte{
		{0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, // 0
		{0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, // 1
		{0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, // 2
		{0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, // 3
		{0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, // 4
		{0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, // 5
		{0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, // 6
		{0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, // 7
		{0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, // 8
		{0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, // 9
		{0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f}, // a
		{0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e}, // b
		{0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e}, // c
		{0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f}, // d
		{0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e}, // e
		{0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08}, // f
		{0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e}, // g
		{0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, // h
		{0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e}, // i
		{0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c}, // j
		{0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, // k
		{0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, // l
		{0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11}, // m
		{0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, // n
		{0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e}, // o
		{0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10}, // p
		{0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01}, // q
		{0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, // r
		{0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e}, // s
		{0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06}, // t
		{0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d}, // u
		{0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04}, // v
		{0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a}, // w
		{0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11}, // x
		{0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e}, // y
		{0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f}, // z
		{0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, // .
		{0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, // ,
		{0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, // :
		{0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, // -
		{0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, // (
		{0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, // )
		{0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, // %
		{0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, // =
		{0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, // /
		{0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, // +
		{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, // _
		{0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, // K (units: kW, kWh)
		{0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, // W
	}
	return font[i], true
}

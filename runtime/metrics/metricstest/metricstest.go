// Package metricstest reads a metrics.Set the way a scraper does: it
// parses the Prometheus text format the set writes, strictly enough to
// catch a malformed exposition (a sample outside its family, a family
// without HELP or TYPE, a histogram whose buckets do not add up).
package metricstest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/metrics"
)

// Family is one metric family of an exposition.
type Family struct {
	Name, Help, Type string
	Samples          []Sample
}

// Sample is one line of a family: its name (with a histogram's _bucket,
// _sum or _count suffix), labels and value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Families are the families of an exposition by name.
type Families map[string]*Family

// Gather writes s's exposition and parses it, failing t if it does not
// parse.
func Gather(t testing.TB, s *metrics.Set) Families {
	t.Helper()
	var b bytes.Buffer
	s.WritePrometheus(&b)
	fams, err := Parse(&b)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, b.String())
	}
	return fams
}

// Value returns the value of the first sample named name whose labels
// include the pairs given (name, value, name, value...).
func (fs Families) Value(name string, labelPairs ...string) (float64, bool) {
	for _, f := range fs {
		if !strings.HasPrefix(name, f.Name) {
			continue
		}
		for _, s := range f.Samples {
			if s.Name == name && s.Has(labelPairs...) {
				return s.Value, true
			}
		}
	}
	return 0, false
}

// Has tells whether the sample's labels include the pairs.
func (s Sample) Has(labelPairs ...string) bool {
	for i := 0; i+1 < len(labelPairs); i += 2 {
		if v, ok := s.Labels[labelPairs[i]]; !ok || v != labelPairs[i+1] {
			return false
		}
	}
	return true
}

// Parse reads the Prometheus text format (0.0.4). Every sample must
// follow the # HELP and # TYPE lines of its family, families must not
// repeat, and a histogram's series need increasing le buckets ending with
// +Inf equal to their _count, and a _sum.
func Parse(r io.Reader) (Families, error) {
	fams := Families{}
	var cur *Family
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", n, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(line[len("# HELP "):], " ")
			if !ok || help == "" {
				return nil, fail("HELP without text")
			}
			if fams[name] != nil {
				return nil, fail("family %s appears twice", name)
			}
			cur = &Family{Name: name, Help: help}
			fams[name] = cur
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			if cur == nil || cur.Name != name || cur.Type != "" {
				return nil, fail("TYPE not right after the HELP of its family")
			}
			if !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, typ) {
				return nil, fail("unknown type")
			}
			cur.Type = typ
		case strings.HasPrefix(line, "#"):
			continue
		default:
			s, err := parseSample(line)
			if err != nil {
				return nil, fail("%v", err)
			}
			if cur == nil || cur.Type == "" || !belongs(s.Name, cur) {
				return nil, fail("sample outside its family (# HELP and # TYPE first)")
			}
			cur.Samples = append(cur.Samples, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, f := range fams {
		if f.Type == "" {
			return nil, fmt.Errorf("family %s has no TYPE", f.Name)
		}
		if f.Type == "histogram" {
			if err := checkHistogram(f); err != nil {
				return nil, err
			}
		}
	}
	return fams, nil
}

func belongs(sample string, f *Family) bool {
	if sample == f.Name {
		return f.Type != "histogram"
	}
	suffix, ok := strings.CutPrefix(sample, f.Name)
	switch {
	case !ok:
		return false
	case f.Type == "histogram":
		return suffix == "_bucket" || suffix == "_sum" || suffix == "_count"
	case f.Type == "summary":
		return suffix == "_sum" || suffix == "_count"
	}
	return false
}

// checkHistogram checks each series of a histogram: le buckets
// increasing in bound and count, the last +Inf, equal to _count.
func checkHistogram(f *Family) error {
	type series struct {
		les    []float64
		counts []float64
		count  float64
		sum    bool
	}
	all := map[string]*series{}
	key := func(s Sample) string {
		var ks []string
		for k, v := range s.Labels {
			if k != "le" {
				ks = append(ks, k+"="+v)
			}
		}
		slices.Sort(ks)
		return strings.Join(ks, ",")
	}
	for _, s := range f.Samples {
		k := key(s)
		if all[k] == nil {
			all[k] = &series{count: -1}
		}
		sr := all[k]
		switch s.Name {
		case f.Name + "_bucket":
			le, err := strconv.ParseFloat(s.Labels["le"], 64)
			if err != nil {
				return fmt.Errorf("%s{%s}: le %q: %v", f.Name, k, s.Labels["le"], err)
			}
			if n := len(sr.les); n > 0 && (le <= sr.les[n-1] || s.Value < sr.counts[n-1]) {
				return fmt.Errorf("%s{%s}: bucket le=%v (%v) after le=%v (%v): not cumulative", f.Name, k, le, s.Value, sr.les[n-1], sr.counts[n-1])
			}
			sr.les, sr.counts = append(sr.les, le), append(sr.counts, s.Value)
		case f.Name + "_sum":
			sr.sum = true
		case f.Name + "_count":
			sr.count = s.Value
		}
	}
	for k, sr := range all {
		n := len(sr.les)
		switch {
		case n == 0 || !math.IsInf(sr.les[n-1], 1):
			return fmt.Errorf("%s{%s}: no le=\"+Inf\" bucket", f.Name, k)
		case sr.count >= 0 && sr.counts[n-1] != sr.count:
			return fmt.Errorf("%s{%s}: +Inf bucket %v, _count %v", f.Name, k, sr.counts[n-1], sr.count)
		}
		if strings.HasPrefix(f.Name, "go_") {
			continue // the Go runtime's histograms have buckets only
		}
		if !sr.sum || sr.count < 0 {
			return fmt.Errorf("%s{%s}: no _sum or _count", f.Name, k)
		}
	}
	return nil
}

// parseSample parses `name{label="value",...} value`.
func parseSample(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("no metric name")
	}
	s.Name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || len(line) < eq+2 || line[eq+1] != '"' {
				return s, fmt.Errorf("malformed label")
			}
			name := line[:eq]
			line = line[eq+2:]
			var v strings.Builder
			j := 0
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
					switch line[j] {
					case 'n':
						v.WriteByte('\n')
					case '\\', '"':
						v.WriteByte(line[j])
					default:
						return s, fmt.Errorf("bad escape \\%c in label %s", line[j], name)
					}
					continue
				}
				v.WriteByte(line[j])
			}
			if j == len(line) {
				return s, fmt.Errorf("unterminated value of label %s", name)
			}
			if _, dup := s.Labels[name]; dup {
				return s, fmt.Errorf("label %s twice", name)
			}
			s.Labels[name] = v.String()
			line = line[j+1:]
			line = strings.TrimPrefix(line, ",")
		}
	}
	fields := strings.Fields(line)
	if len(fields) != 1 && len(fields) != 2 { // a value, perhaps a timestamp
		return s, fmt.Errorf("want a value after the labels")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value: %v", err)
	}
	s.Value = v
	return s, nil
}

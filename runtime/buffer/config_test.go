package buffer

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tree map[string]any
		want string // a problem, or "" for none
		opts Options
	}{
		{"defaults", map[string]any{"type": "disk"}, "",
			Options{Dir: "/state/t/buffer", MaxSize: DefaultMaxSize, WhenFull: Block}},
		{"all keys", map[string]any{"type": "disk", "path": "buf", "max_size": "64MiB", "segment_size": "4MiB", "when_full": "drop_oldest", "fsync": "never"}, "",
			Options{Dir: "/tasks/buf", MaxSize: 64 << 20, SegmentSize: 4 << 20, WhenFull: DropOldest, NoSync: true}},
		{"absolute path", map[string]any{"type": "disk", "path": "/var/buf"}, "",
			Options{Dir: "/var/buf", MaxSize: DefaultMaxSize, WhenFull: Block}},
		{"missing type", map[string]any{"path": "x"}, `missing required key "type"`, Options{}},
		{"unknown type", map[string]any{"type": "memory"}, `invalid value "memory"`, Options{}},
		{"bad policy", map[string]any{"type": "disk", "when_full": "drop_newest"}, `must be one of "block", "drop_oldest"`, Options{}},
		{"tiny max_size", map[string]any{"type": "disk", "max_size": "1KiB"}, "max_size: max_size 1024 is below the minimum", Options{}},
		{"segment over half", map[string]any{"type": "disk", "max_size": "1MiB", "segment_size": "600KiB"}, "segment_size: segment_size 614400 must be between", Options{}},
		{"typo", map[string]any{"type": "disk", "max_sise": "1GiB"}, `unknown key "max_sise"`, Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfig()
			p := component.NewProblems("sink", "buffer")
			component.Decode(tc.tree, c, p)
			var msgs []string
			for _, pr := range p.List() {
				msgs = append(msgs, strings.Join(pr.Path, ".")+": "+pr.Msg)
			}
			got := strings.Join(msgs, "\n")
			if tc.want == "" {
				if got != "" {
					t.Fatalf("problems:\n%s", got)
				}
				o := c.Options("/tasks", "/state/t/buffer", zerolog.Nop())
				tc.opts.Dir = filepath.FromSlash(tc.opts.Dir)
				if o.Dir != tc.opts.Dir || o.MaxSize != tc.opts.MaxSize || o.SegmentSize != tc.opts.SegmentSize ||
					o.WhenFull != tc.opts.WhenFull || o.NoSync != tc.opts.NoSync {
					t.Fatalf("options %+v, want %+v", o, tc.opts)
				}
				if _, err := o.withDefaults(); err != nil {
					t.Fatalf("Open would refuse the options: %v", err)
				}
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("problems:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
	if _, err := component.FieldsOf(NewConfig()); err != nil {
		t.Fatalf("fields for the generated docs: %v", err)
	}
}

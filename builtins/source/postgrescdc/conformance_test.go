package postgrescdc

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func TestConformance(t *testing.T) {
	e := newPG(t)
	tbl := e.table("conf", "id bigserial PRIMARY KEY, body text NOT NULL")
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(tb testing.TB) component.Source {
			return e.source(tb, `tables = ["`+tbl+`"]`)
		},
		Produce: func(tb testing.TB, bodies [][]byte) {
			// One transaction per body, in order.
			for _, b := range bodies {
				if _, err := e.db.Exec(context.Background(), "INSERT INTO "+tbl+" (body) VALUES ($1)", string(b)); err != nil {
					tb.Fatal(err)
				}
			}
		},
		Body: func(tb testing.TB, m message.Message) []byte {
			var ev struct {
				Data struct {
					Op    string `json:"op"`
					After struct {
						Body string `json:"body"`
					} `json:"after"`
				} `json:"data"`
			}
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				tb.Fatalf("event: %v", err)
			}
			if ev.Data.Op != "c" {
				return nil
			}
			return []byte(ev.Data.After.Body)
		},
		Redelivers: true,
		Ordered:    true,
	})
}

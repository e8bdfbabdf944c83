package function

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// The answer of a function is a JSON array with one element per event of
// the request, in the same order.
//
// With response = "results" each element is an object:
//
//	{"outputs": [v1, v2]}         zero or more outputs (fan out; [] filters)
//	{"output": v}                 exactly one output
//	{"drop": true}                no output: the event is filtered
//	{"error": "why"}              the event failed: dead-letter queue
//	{"error": "why", "retry": true}  failed for now: the task's retry policy calls again
//
// With response = "values" each element is the output itself, and null
// filters the event. An output is the JSON text of the value as the
// function wrote it (a JSON string stays quoted).

// resultSink receives what parse finds for event i.
type resultSink interface {
	output(i int, value []byte)
	fail(i int, msg string, retry bool)
}

// errAnswer is a malformed answer as a whole.
var errAnswer = errors.New("invalid answer")

// parse reads body, the answer for n events, in mode. An error means the
// answer as a whole is unusable (not an array, wrong length, malformed);
// per-event problems go to rs.fail.
func parse(body []byte, n int, mode string, rs resultSink) error {
	i := jsonscan.SkipSpace(body, 0)
	if i >= len(body) || body[i] != '[' {
		return fmt.Errorf("%w: want a JSON array with one element per event, got %s", errAnswer, excerpt(body))
	}
	end := jsonscan.ValidAt(body, i)
	if end < 0 {
		return fmt.Errorf("%w: malformed JSON: %s", errAnswer, excerpt(body))
	}
	if jsonscan.SkipSpace(body, end) != len(body) {
		return fmt.Errorf("%w: text after the JSON array", errAnswer)
	}
	// Count first: a wrong length must not emit anything.
	count := 0
	it := jsonscan.ElementsOf(body, i)
	for it.Next() {
		count++
	}
	if count != n {
		return fmt.Errorf("%w: %d elements for %d events; answer one element per event, in order", errAnswer, count, n)
	}
	it = jsonscan.ElementsOf(body, i)
	for k := 0; it.Next(); k++ {
		vs, ve := it.Value()
		v := body[vs:ve]
		if mode == ResponseValues {
			if string(v) != "null" {
				rs.output(k, v)
			}
			continue
		}
		parseResult(v, k, rs)
	}
	return nil
}

// parseResult reads one element of a "results" answer.
func parseResult(v []byte, k int, rs resultSink) {
	if v[0] != '{' {
		rs.fail(k, fmt.Sprintf("result %d is not an object with outputs, output, drop or error: %s", k, excerpt(v)), false)
		return
	}
	var outputs, output, errMsg []byte
	drop, retry, has := false, false, false
	ms := jsonscan.MembersOf(v, 0)
	for ms.Next() {
		vs, ve := ms.Value()
		val := v[vs:ve]
		switch {
		case ms.KeyIs("outputs"):
			if val[0] != '[' {
				rs.fail(k, fmt.Sprintf("result %d: outputs must be an array, got %s", k, excerpt(val)), false)
				return
			}
			outputs, has = val, true
		case ms.KeyIs("output"):
			output, has = val, true
		case ms.KeyIs("drop"):
			drop = string(val) == "true"
			has = has || drop
		case ms.KeyIs("error"):
			if string(val) == "null" {
				continue
			}
			errMsg, has = val, true
		case ms.KeyIs("retry"):
			retry = string(val) == "true"
		}
	}
	switch {
	case !has:
		rs.fail(k, fmt.Sprintf("result %d has none of outputs, output, drop or error: %s", k, excerpt(v)), false)
	case errMsg != nil:
		msg, ok := jsonscan.AppendString(nil, errMsg)
		if !ok {
			msg = errMsg // not a string: its JSON text
		}
		if len(msg) == 0 {
			msg = []byte("the function reported an error without a message")
		}
		rs.fail(k, string(msg), retry)
	case outputs != nil && output != nil:
		rs.fail(k, fmt.Sprintf("result %d has both outputs and output: keep one", k), false)
	case outputs != nil:
		es := jsonscan.ElementsOf(outputs, 0)
		for es.Next() {
			s, e := es.Value()
			rs.output(k, outputs[s:e])
		}
	case output != nil:
		rs.output(k, output)
	}
}

// excerpt returns the start of b for a message.
func excerpt(b []byte) string {
	const max = 120
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

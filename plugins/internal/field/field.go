// Package field parses the field paths of the first-party plugins'
// configs: keys separated by dots from the root of the payload
// ("data.customer.id"), optionally written JSONPath-style with a leading
// "$." ("$.data.customer.id"). A key that is a decimal number selects an
// array element ("data.items.0.sku"). Keys containing dots cannot be
// named.
package field

import (
	"errors"
	"strconv"
	"strings"
)

// Errors are built with strconv and concatenation rather than fmt: fmt
// (and the reflect it brings) would be most of a plugin's WebAssembly.

// Parse splits a path into its keys. "" and "$" name the whole payload
// (no keys).
func Parse(path string) ([]string, error) {
	p := strings.TrimSpace(path)
	switch {
	case p == "" || p == "$":
		return []string{}, nil
	case strings.HasPrefix(p, "$."):
		p = p[2:]
	case strings.HasPrefix(p, "$"):
		return nil, errors.New("path " + strconv.Quote(path) + ": write $.key or key")
	}
	keys := strings.Split(p, ".")
	for i, k := range keys {
		if k == "" {
			return nil, errors.New("path " + strconv.Quote(path) + ": key " + strconv.Itoa(i+1) + " is empty (keys are separated by single dots)")
		}
		if strings.ContainsAny(k, "[]*") {
			return nil, errors.New("path " + strconv.Quote(path) + ": only dotted keys are supported (data.items.0, not data.items[0])")
		}
	}
	return keys, nil
}

// MustNotBeRoot is Parse for paths that must name a field, not the whole
// payload. name is the config key, for the message.
func MustNotBeRoot(name, path string) ([]string, error) {
	keys, err := Parse(path)
	if err != nil {
		return nil, errors.New(name + ": " + err.Error())
	}
	if len(keys) == 0 {
		return nil, errors.New(name + ": name a field (for example data.id), not the whole payload")
	}
	return keys, nil
}

// Choice checks that v is one of the allowed values of the config key
// name ("" stands for the first).
func Choice(name, v string, allowed ...string) (string, error) {
	if v == "" {
		return allowed[0], nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", errors.New(name + ": " + strconv.Quote(v) + " is not one of " + strings.Join(allowed, ", "))
}

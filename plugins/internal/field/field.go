// Package field parses the field paths of the first-party plugins'
// configs: keys separated by dots from the root of the payload
// ("data.customer.id"), optionally written JSONPath-style with a leading
// "$." ("$.data.customer.id"). A key that is a decimal number selects an
// array element ("data.items.0.sku"). Keys containing dots cannot be
// named.
package field

import (
	"fmt"
	"strings"
)

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
		return nil, fmt.Errorf("path %q: write $.key or key", path)
	}
	keys := strings.Split(p, ".")
	for i, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("path %q: key %d is empty (keys are separated by single dots)", path, i+1)
		}
		if strings.ContainsAny(k, "[]*") {
			return nil, fmt.Errorf("path %q: only dotted keys are supported (data.items.0, not data.items[0])", path)
		}
	}
	return keys, nil
}

// MustNotBeRoot is Parse for paths that must name a field, not the whole
// payload. name is the config key, for the message.
func MustNotBeRoot(name, path string) ([]string, error) {
	keys, err := Parse(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: name a field (for example data.id), not the whole payload", name)
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
	return "", fmt.Errorf("%s: %q is not one of %s", name, v, strings.Join(allowed, ", "))
}

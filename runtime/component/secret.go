package component

import "fmt"

// Secret is a config string that must never reach a log line or an error
// message (a password, a token): it prints as "[redacted]" under every fmt
// verb and when marshalled as text or JSON. Reveal returns the value, for the
// one place that hands it to the library that needs it.
type Secret string

const redacted = "[redacted]"

// UnmarshalText stores the value as it is (the loader has already expanded
// `${env:...}` references).
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Secret(b)
	return nil
}

// MarshalText renders the secret redacted, so that encoding a config (for a
// status page, a debug dump) never leaks it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String returns "[redacted]", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("component.Secret(%q)", s.String()) }

// Format makes every verb (%s, %v, %q, %x, %d...) print the redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		fmt.Fprint(f, s.String())
	}
}

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

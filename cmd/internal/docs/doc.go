// Package docs checks the repository's documentation as tests: every
// relative link and every mention of a Markdown file resolves inside the
// repository, and the README's example runs as written. It has no code of
// its own.
package docs

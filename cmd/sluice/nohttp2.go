//go:build nethttpomithttp2

package main

// Go's own nethttpomithttp2 tag leaves HTTP/2 out of net/http: 0.52 MB less
// (docs/edge.md). sluice version says so, as it does for connector families.
func init() {
	buildNotes = append(buildNotes, "built without HTTP/2 (tag nethttpomithttp2): HTTP sources, sinks and the admin API speak HTTP/1.1")
}

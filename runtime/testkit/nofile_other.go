//go:build !unix

package testkit

// launcher cannot lower the open-file limit here: it runs bin as it is.
func launcher(_ uint64, bin string, args []string) (exe string, argv, env []string) {
	return bin, args, nil
}

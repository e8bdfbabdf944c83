package natstest

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestLocalKeepsStoreDir: two connections create and delete a stream each,
// over and over, as the tests of two packages sharing the server do. With
// only their streams in the account, one's delete of the account's last
// stream removed the store directory under the other's create (error
// creating store for stream), a few times in a hundred; Local's KeepStream
// keeps the directory.
func TestLocalKeepsStoreDir(t *testing.T) {
	addr := StartServer(t, func(addr, dir string) string {
		return fmt.Sprintf("listen: %s\njetstream { store_dir: %q }\n", addr, filepath.Join(dir, "js"))
	})
	t.Setenv("SLUICE_TEST_NATS", "nats://"+addr)
	Local(t)
	ctx := Ctx(t)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := nats.Connect("nats://" + addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs <- err
				return
			}
			name := fmt.Sprintf("CHURN_%d", i)
			for n := range 500 {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Storage: jetstream.FileStorage}); err != nil {
					errs <- fmt.Errorf("create %s, time %d: %w", name, n+1, err)
					return
				}
				if err := js.DeleteStream(ctx, name); err != nil {
					errs <- fmt.Errorf("delete %s, time %d: %w", name, n+1, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

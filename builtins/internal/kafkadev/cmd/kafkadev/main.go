// Command kafkadev serves a local in-memory Kafka cluster (franz-go's kfake)
// for trying pipelines with kcat, until `sluice dev kafka` wraps the same
// package:
//
//	go run ./builtins/internal/kafkadev/cmd/kafkadev -addr 127.0.0.1:9092 -partitions 3 -topics orders,orders-out
//
// It runs until interrupted; everything it holds is lost when it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sluicehq/sluice/builtins/internal/kafkadev"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9092", "host:port of the first broker")
	brokers := flag.Int("brokers", 1, "number of brokers (on consecutive ports)")
	partitions := flag.Int("partitions", 1, "partitions of each topic, also of auto-created ones")
	topics := flag.String("topics", "", "comma-separated topics to create")
	auto := flag.Bool("auto-create", true, "let clients create topics by using them")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var ts []string
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Addr: *addr, Brokers: *brokers, Partitions: *partitions, Topics: ts, AutoCreateTopics: *auto})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkadev:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kafkadev: local Kafka on %s (topics %v, %d partitions each); Ctrl-C stops it\n", strings.Join(c.Addrs(), ","), ts, *partitions)
	<-ctx.Done()
	c.Close()
}

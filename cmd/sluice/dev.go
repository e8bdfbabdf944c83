package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
)

// devKafkaOptions are the flags of `sluice dev kafka`, for startDevKafka:
// the dev Kafka (franz-go's kfake) is compiled in only by -tags devkafka
// (dev_kafka.go), which keeps it out of release binaries.
type devKafkaOptions struct {
	Addr             string
	Brokers          int
	Partitions       int
	Topics           []string
	AutoCreateTopics bool
}

// devCmd runs local stand-ins of the services tasks talk to, for trying
// pipelines by hand.
func devCmd(args []string, stdout, stderr io.Writer) int {
	const usage = "Usage: sluice dev kafka [--addr HOST:PORT] [--brokers N] [--partitions N] [--topics a,b]\n\n" +
		"Serves a local in-memory Kafka (brokers and topics) until Ctrl-C, for trying pipelines.\n" +
		"Run 'sluice help dev kafka' for its options."
	switch {
	case len(args) == 0:
		fmt.Fprintln(stderr, usage)
		return exitUsage
	case isHelp(args[0]):
		fmt.Fprintln(stdout, usage)
		return exitOK
	case args[0] != "kafka":
		fmt.Fprintf(stderr, "sluice dev: unknown subcommand %q (want kafka)\n", args[0])
		return exitUsage
	}
	fs := newFlagSet("dev kafka", stderr, "dev kafka [options]",
		"Serves a local in-memory Kafka until Ctrl-C (what tests use: franz-go's kfake).")
	addr := fs.String("addr", "127.0.0.1:9092", "host:port of the first broker (more brokers take the next ports)")
	brokers := fs.Int("brokers", 1, "number of brokers")
	partitions := fs.Int("partitions", 1, "partitions of each topic, auto-created ones included")
	topics := fs.String("topics", "", "comma-separated topics to create")
	auto := fs.Bool("auto-create", true, "let clients create topics by using them")
	pos, err := parseArgs(fs, args[1:], stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 0, 0, "") {
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var ts []string
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	addrs, closeKafka, err := startDevKafka(ctx, devKafkaOptions{Addr: *addr, Brokers: *brokers, Partitions: *partitions, Topics: ts, AutoCreateTopics: *auto})
	if err != nil {
		fmt.Fprintf(stderr, "sluice dev kafka: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "local Kafka (in memory) on %s, topics %v with %d partitions each; Ctrl-C stops it\n", strings.Join(addrs, ","), ts, *partitions)
	<-ctx.Done()
	closeKafka()
	return exitOK
}

package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestGroupNotAuthorized: a user that may read the topic but not use the
// group gets a task-permanent error from Read, naming the cause.
func TestGroupNotAuthorized(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topicACL := func(op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "acl", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 1, Topics: []string{"acl"},
		Users: []kafkadev.User{{Mechanism: "PLAIN", Name: "admin", Password: "admin"}},
		Extra: []kfake.Opt{kfake.EnableACLs(), kfake.User("PLAIN", "reader", "pw", topicACL(kmsg.ACLOperationRead), topicACL(kmsg.ACLOperationDescribe))}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tree := baseTree(c, "acl", uniq(t, "g"))
	tree["sasl"] = map[string]any{"mechanism": "PLAIN", "username": "reader", "password": "pw"}
	s := newSource(t, testEnv(t), tree)
	rctx, rcancel := context.WithTimeout(context.Background(), progressBound)
	defer rcancel()
	_, err = s.Read(rctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "GROUP_AUTHORIZATION_FAILED") {
		t.Fatalf("Read: %v (%v), want a task-permanent GROUP_AUTHORIZATION_FAILED", err, component.ClassOf(err))
	}
}

package kafka

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/component"
)

// TestTopicNotAuthorized: a user the ACLs do not let write the topic gets
// task-permanent record errors: no retry can fix a missing grant.
func TestTopicNotAuthorized(t *testing.T) {
	describe := kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "acl", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}
	c := cluster(t, kafkadev.Options{Partitions: 1, Topics: []string{"acl"},
		Users: []kafkadev.User{{Mechanism: "PLAIN", Name: "admin", Password: "admin"}},
		Extra: []kfake.Opt{kfake.EnableACLs(), kfake.User("PLAIN", "viewer", "pw", describe)}})
	for _, idempotent := range []bool{false, true} {
		s := newSink(t, testEnv(t), map[string]any{"brokers": []any{c.Addr()}, "topic": "acl", "idempotent": idempotent,
			"sasl": map[string]any{"mechanism": "PLAIN", "username": "viewer", "password": "pw"}})
		err := write(t, s, msg(`{}`, "x"))
		var re *component.RecordErrors
		// The idempotent producer first needs IDEMPOTENT_WRITE on the cluster.
		if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassTaskPermanent || !strings.Contains(re.Errs[0].Error(), "AUTHORIZATION_FAILED") {
			t.Fatalf("idempotent=%v: write: %v, want a task-permanent authorization error", idempotent, err)
		}
	}
}

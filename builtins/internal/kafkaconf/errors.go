package kafkaconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/runtime/component"
)

// Kafka error codes that condemn one record, not the connection: the event
// goes to the dead-letter queue without retries. Kafka calls CORRUPT_MESSAGE
// retriable, but resending the same bytes cannot fix it.
var eventPermanent = []*kerr.Error{
	kerr.MessageTooLarge,
	kerr.RecordListTooLarge,
	kerr.InvalidRecord,
	kerr.CorruptMessage,
	kerr.InvalidTimestamp,
}

// Kafka error codes that no retry can fix: the task stops in StartFailed.
// UNKNOWN_TOPIC_OR_PARTITION is retriable for Kafka (a topic being created);
// franz-go has already retried it by the time a record fails with it.
var taskPermanent = []*kerr.Error{
	kerr.UnknownTopicOrPartition,
	kerr.UnknownTopicID,
	kerr.InvalidTopicException,
	kerr.TopicAuthorizationFailed,
	kerr.GroupAuthorizationFailed,
	kerr.ClusterAuthorizationFailed,
	kerr.TransactionalIDAuthorizationFailed,
	kerr.DelegationTokenAuthorizationFailed,
	kerr.SaslAuthenticationFailed,
	kerr.UnsupportedSaslMechanism,
	kerr.IllegalSaslState,
	kerr.InvalidRequiredAcks,
	kerr.PolicyViolation,
	kerr.UnsupportedCompressionType,
}

// Class maps an error from franz-go to a component error class
// (docs/delivery.md): the explicit lists above first, then Kafka's own retriable flag,
// TLS certificate problems as task-permanent, and everything else
// (timeouts, refused connections, a closed client) as retryable.
func Class(err error) component.Class {
	for _, e := range eventPermanent {
		if errors.Is(err, e) {
			return component.ClassEventPermanent
		}
	}
	for _, e := range taskPermanent {
		if errors.Is(err, e) {
			return component.ClassTaskPermanent
		}
	}
	if kerr.IsRetriable(err) {
		return component.ClassRetryable
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var header tls.RecordHeaderError
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header) {
		return component.ClassTaskPermanent
	}
	// Everything else retries: timeouts (kgo.ErrRecordTimeout), exhausted
	// retries, refused connections, a closed client, and the Kafka codes we
	// do not list, since retrying is the safe default the contract asks for
	// when a failure cannot be told apart.
	return component.ClassRetryable
}

// Classify wraps err with its class (nil stays nil).
func Classify(err error) error {
	if err == nil {
		return nil
	}
	switch Class(err) {
	case component.ClassEventPermanent:
		return component.EventPermanent(err)
	case component.ClassTaskPermanent:
		return component.TaskPermanent(err)
	}
	return component.Retryable(err, 0)
}

// Package apperr is Leadmarket's one error type: every refusal the product makes carries a Code
// that the GraphQL error presenter maps to extensions.code. Errors without a Code are internal
// errors: clients see "internal error", operators see the log line.
package apperr

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Code classifies an error for clients. Codes are part of the public API: never rename one.
type Code string

// Codes used across the domains.
const (
	Unauthenticated       Code = "UNAUTHENTICATED"
	Forbidden             Code = "FORBIDDEN"
	NotFound              Code = "NOT_FOUND"
	InvalidInput          Code = "INVALID_INPUT"
	Conflict              Code = "CONFLICT"
	InsufficientCredits   Code = "INSUFFICIENT_CREDITS"
	SoldOut               Code = "SOLD_OUT"
	AlreadyPurchased      Code = "ALREADY_PURCHASED"
	IdempotencyKeyReused  Code = "IDEMPOTENCY_KEY_REUSED"
	IdempotencyInProgress Code = "IDEMPOTENCY_IN_PROGRESS"
	MFARequired           Code = "MFA_REQUIRED"
	RateLimited           Code = "RATE_LIMITED"
	Unavailable           Code = "UNAVAILABLE"
	Internal              Code = "INTERNAL"
)

// Codes of GraphQL over HTTP and the query guardrails (graph/gqlhttp): refusals of a request or a
// document before any resolver runs. ComplexityLimitExceeded is the code gqlgen's complexity
// limit sets itself; BadUserInput is what the error presenter gives GraphQL's own errors that
// carry none.
const (
	BadRequest              Code = "BAD_REQUEST"
	BadUserInput            Code = "BAD_USER_INPUT"
	BatchingNotSupported    Code = "BATCHING_NOT_SUPPORTED"
	RequestTooLarge         Code = "REQUEST_TOO_LARGE"
	DocumentTooLarge        Code = "DOCUMENT_TOO_LARGE"
	MethodNotAllowed        Code = "METHOD_NOT_ALLOWED"
	NotAcceptable           Code = "NOT_ACCEPTABLE"
	UnsupportedMediaType    Code = "UNSUPPORTED_MEDIA_TYPE"
	CSRFPreflightRequired   Code = "CSRF_PREFLIGHT_REQUIRED"
	IntrospectionDisabled   Code = "INTROSPECTION_DISABLED"
	DepthLimitExceeded      Code = "DEPTH_LIMIT_EXCEEDED"
	AliasLimitExceeded      Code = "ALIAS_LIMIT_EXCEEDED"
	FieldLimitExceeded      Code = "FIELD_LIMIT_EXCEEDED"
	DuplicateLimitExceeded  Code = "DUPLICATE_LIMIT_EXCEEDED"
	DirectiveLimitExceeded  Code = "DIRECTIVE_LIMIT_EXCEEDED"
	ComplexityLimitExceeded Code = "COMPLEXITY_LIMIT_EXCEEDED"
	TierLimitExceeded       Code = "TIER_LIMIT_EXCEEDED"
)

// Error is a coded, client-safe error. Message is shown to clients as is; Details become extra
// fields of extensions (for example the ids of the leads a purchase was refused for).
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	// Err is the underlying cause, logged but never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an Error with code and message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e with the detail key set to value.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Details = make(map[string]any, len(e.Details)+1)
	for k, v := range e.Details {
		c.Details[k] = v
	}
	c.Details[key] = value
	return &c
}

// CheckID refuses an id that is not a UUID in its canonical 36-character form with
// INVALID_INPUT, before it reaches SQL as a type error that would surface as INTERNAL (uuid
// accepts forms such as urn:uuid:… that PostgreSQL does not).
func CheckID(id string) error {
	if len(id) != 36 || uuid.Validate(id) != nil {
		return New(InvalidInput, "%q is not a valid id", id)
	}
	return nil
}

// CheckTime refuses a time PostgreSQL cannot store (before year 1 or after 9999) with
// INVALID_INPUT; name is the argument's name for the message.
func CheckTime(name string, t time.Time) error {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return New(InvalidInput, "%s must be between the years 1 and 9999", name)
	}
	return nil
}

// CodeOf returns the Code of the first *Error in err's chain, or Internal when there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }

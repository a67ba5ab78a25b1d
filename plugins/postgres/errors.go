package postgres

// How PostgreSQL's errors map to sdk's, and the retry of transactions that
// the server aborted to keep them serializable.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/secretgate/secretgate/sdk"
)

// maxAttempts bounds retry: a transaction aborted this often in a row is
// up against something other than an unlucky interleaving.
const maxAttempts = 5

// retry runs fn again when PostgreSQL aborted it as a serialization failure
// or a deadlock victim, after a short random pause. Writes lock the secret's
// row (FOR UPDATE), so neither is expected; the retry is a guard, not the
// mechanism.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range maxAttempts {
		if err = fn(); err == nil || !retryable(err) {
			return err
		}
		pause := time.Duration(1+rand.IntN(10*(attempt+1))) * time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
	return err
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// mapErr turns an error of pgx or of the server into one of sdk's typed
// errors, with what was being done. Errors that already are sdk's (or are
// about keys) pass through unchanged. The server's message is kept, its
// DETAIL is not: a detail may quote a row.
func mapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if isSDK(err) {
		return err
	}
	// A cancelled or expired context is the caller's, whatever pgx made of
	// it (it closes the connection and may report a network error).
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("postgres: %s: %w", op, ctxErr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := fmt.Sprintf("postgres: %s: %s (SQLSTATE %s)", op, pgErr.Message, pgErr.Code)
		switch class := pgErr.Code[:2]; {
		case class == "08", class == "53", class == "57", class == "58",
			pgErr.Code == "40001", pgErr.Code == "40P01", // retries exhausted
			pgErr.Code == "25006", // read_only_sql_transaction: a standby, or a read-only database
			pgErr.Code == "3D000": // invalid_catalog_name: the database does not exist (yet)
			return fmt.Errorf("%s: %w", msg, sdk.ErrUnavailable)
		case class == "28", pgErr.Code == "42501":
			return fmt.Errorf("%s: %w", msg, sdk.ErrPermission)
		}
		return errors.New(msg)
	}
	if connectionError(err) {
		return fmt.Errorf("postgres: %s: %s: %w", op, strings.TrimSpace(err.Error()), sdk.ErrUnavailable)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// connectionError reports whether err is about reaching the server rather
// than about a statement: refused, reset, timed out, closed. pgx names the
// user and database of a failed connection in its message, never the
// password; that is kept, as it is what an operator needs.
func connectionError(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	// pgconn's own errors about the connection (write failed, conn busy or
	// closed) all say whether a retry is safe; nothing else of pgx's does.
	var pgconnErr interface{ SafeToRetry() bool }
	return errors.As(err, &connErr) || errors.As(err, &netErr) || errors.As(err, &pgconnErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "closed pool")
}

// isSDK reports whether err already is one of sdk's typed errors or one of
// this package's, which mapErr must not re-wrap as unavailable.
func isSDK(err error) bool {
	for _, target := range []error{
		sdk.ErrNotFound, sdk.ErrAlreadyExists, sdk.ErrVersionMismatch, sdk.ErrInvalid,
		sdk.ErrUnavailable, sdk.ErrPermission, ErrDecrypt, ErrKeyMismatch, ErrSchemaNewer,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

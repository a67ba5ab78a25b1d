package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/secretgate/secretgate/sdk"
)

// visiblePage fills one page with names the subject may see, walking as
// many backend pages as it takes, so that a page is never empty while a
// token says more follows, and a token is given only when at least one
// more visible name exists. Hidden names cost backend calls (time) but
// leave no other trace in the answer.
func (s *Server) visiblePage(ctx context.Context, b sdk.Backend, r *request, req sdk.ListRequest, cur pageCursor) ([]sdk.Meta, pageCursor, bool, error) {
	size := sdk.PageSize(req.PageSize)
	az := r.authz()
	seesAll := az.SeesAll(r.subject, r.route.Project)
	if cur.Backend != r.route.Backend {
		// Issued before a migration switch: resume by name from the start.
		cur = pageCursor{Backend: r.route.Backend, After: cur.After}
	}
	out := make([]sdk.Meta, 0, size)
	tok := cur.Token
	for {
		page, err := b.List(ctx, sdk.ListRequest{Project: req.Project, Prefix: req.Prefix, PageSize: size, PageToken: tok})
		if err != nil {
			return nil, cur, false, err
		}
		for _, m := range page.Secrets {
			// SeesAll promises CanSee for every name of the project, and az
			// is this request's snapshot, so the answer cannot change here.
			if m.Name <= cur.After || !seesAll && !az.CanSee(r.subject, r.route.Project, m.Name) {
				continue
			}
			if len(out) == size {
				// A visible name beyond this page: resume at this backend
				// page, after the last name we answer.
				return out, pageCursor{Backend: cur.Backend, Token: tok, After: out[size-1].Name}, true, nil
			}
			out = append(out, m)
		}
		if page.NextPageToken == "" {
			return out, cur, false, nil
		}
		if page.NextPageToken == tok {
			return nil, cur, false, fmt.Errorf("backend %q repeated its page token: %w", r.route.Backend, errBackendPaging)
		}
		if seesAll && len(out) == size {
			// Every name is visible, so the backend's "more follows" is
			// ours too: no need to fetch the next page to find out.
			return out, pageCursor{Backend: cur.Backend, Token: page.NextPageToken, After: out[size-1].Name}, true, nil
		}
		tok = page.NextPageToken
	}
}

var errBackendPaging = errors.New("backend paging does not advance")

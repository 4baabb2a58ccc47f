package notebook

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// CardInput creates or changes a card; nil fields keep their value.
type CardInput struct {
	Title   *string
	Content *string
	Pinned  *bool
}

func (in CardInput) apply(c *Card) error {
	if in.Title != nil {
		c.Title = oneLine(*in.Title)
	}
	if in.Content != nil {
		c.Content = *in.Content
	}
	if in.Pinned != nil {
		c.Pinned = *in.Pinned
	}
	if err := validTitle(c.Title); err != nil {
		return err
	}
	switch {
	case len(c.Content) > MaxCardBytes:
		return invalid("content", fmt.Sprintf("at most %d bytes", MaxCardBytes))
	case !utf8.ValidString(c.Content):
		return invalid("content", "is not valid UTF-8")
	}
	return nil
}

// CreateCard adds a person's card at the end of a notebook (write access).
func (s *Service) CreateCard(ctx context.Context, a Actor, notebookID string, in CardInput) (*Card, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	c := Card{ID: nodus.NewID(), NotebookID: notebookID, TenantID: a.TenantID, Kind: CardHuman, Citations: []Citation{},
		CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
	if err := in.apply(&c); err != nil {
		return nil, err
	}
	return s.addCard(ctx, a, c)
}

func (s *Service) addCard(ctx context.Context, a Actor, c Card) (*Card, error) {
	cards, err := s.store.ListNotebookCards(a.ctx(ctx), c.NotebookID)
	if err != nil {
		return nil, err
	}
	if len(cards) >= MaxCardsPerNotebook {
		return nil, nodus.Errorf(nodus.ECONFLICT, "a notebook holds at most %d cards", MaxCardsPerNotebook)
	}
	c, err = s.store.CreateNotebookCard(a.ctx(ctx), c)
	if err != nil {
		return nil, fmt.Errorf("notebook: add card: %w", err)
	}
	s.touch(ctx, a, c.NotebookID)
	return &c, nil
}

// ListCards lists a notebook's cards by position (the UI shows the pinned
// ones first; read access).
func (s *Service) ListCards(ctx context.Context, a Actor, notebookID string) ([]Card, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermRead); err != nil {
		return nil, err
	}
	return s.store.ListNotebookCards(a.ctx(ctx), notebookID)
}

// GetCard returns a card (read access).
func (s *Service) GetCard(ctx context.Context, a Actor, notebookID, id string) (*Card, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermRead); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, notFound("card", id)
	}
	c, err := s.store.FindNotebookCard(a.ctx(ctx), notebookID, id)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// UpdateCard edits, pins or unpins a card (write access).
func (s *Service) UpdateCard(ctx context.Context, a Actor, notebookID, id string, in CardInput) (*Card, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, notFound("card", id)
	}
	c, err := s.store.UpdateNotebookCard(a.ctx(ctx), notebookID, id, func(c *Card) error {
		if err := in.apply(c); err != nil {
			return err
		}
		c.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.touch(ctx, a, notebookID)
	return &c, nil
}

// DeleteCard removes a card (write access).
func (s *Service) DeleteCard(ctx context.Context, a Actor, notebookID, id string) error {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return notFound("card", id)
	}
	if err := s.store.DeleteNotebookCard(a.ctx(ctx), notebookID, id); err != nil {
		return err
	}
	s.touch(ctx, a, notebookID)
	return nil
}

// ReorderCards puts a notebook's cards in the order of ids, which must name
// each of its cards once (write access).
func (s *Service) ReorderCards(ctx context.Context, a Actor, notebookID string, ids []string) ([]Card, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !nodus.ValidID(id) || seen[id] {
			return nil, invalid("card_ids", "must name each of the notebook's cards once")
		}
		seen[id] = true
	}
	cards, err := s.store.ReorderNotebookCards(a.ctx(ctx), notebookID, ids, s.now().UTC())
	if err != nil {
		return nil, err
	}
	s.touch(ctx, a, notebookID)
	return cards, nil
}

// MoveCard moves a card one place up (delta -1) or down (+1) among the
// notebook's cards (write access): the UI's buttons.
func (s *Service) MoveCard(ctx context.Context, a Actor, notebookID, id string, delta int) ([]Card, error) {
	cards, err := s.ListCards(ctx, a, notebookID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(cards))
	at := -1
	for i, c := range cards {
		ids[i] = c.ID
		if c.ID == id {
			at = i
		}
	}
	if at < 0 {
		return nil, notFound("card", id)
	}
	to := at + delta
	if to < 0 || to >= len(ids) || delta == 0 {
		return cards, nil
	}
	ids[at], ids[to] = ids[to], ids[at]
	return s.ReorderCards(ctx, a, notebookID, ids)
}

// cardTitle is an answer's card title: its question's first line.
func cardTitle(question string) string {
	t := titleFrom(question)
	if strings.TrimSpace(t) == "" {
		return "Answer"
	}
	return t
}

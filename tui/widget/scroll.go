package widget

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/pganalytics/pganalytics/tui/keys"
)

// Window returns the first line to show so that the selected lines [selStart, selEnd) are visible in
// a window of height lines over total lines, moving the previous offset as little as possible.
func Window(offset, total, height, selStart, selEnd int) int {
	if height <= 0 || total <= height {
		return 0
	}
	if selEnd-selStart > height {
		selEnd = selStart + height
	}
	if selStart < offset {
		offset = selStart
	}
	if selEnd > offset+height {
		offset = selEnd - height
	}
	return max(0, min(offset, total-height))
}

// Clamp bounds i to [0, n-1] (0 when n is 0).
func Clamp(i, n int) int {
	if n <= 0 || i < 0 {
		return 0
	}
	return min(i, n-1)
}

// Cursor is a selection over n one-line rows shown in a window of some height.
type Cursor struct {
	Index  int
	Offset int
}

// Move shifts the selection by delta, clamped to the rows.
func (c *Cursor) Move(delta, n int) { c.Index = Clamp(c.Index+delta, n) }

// Visible returns the rows [start, end) to draw in height lines, scrolling to keep the selection in.
func (c *Cursor) Visible(height, n int) (start, end int) {
	c.Index = Clamp(c.Index, n)
	c.Offset = Window(c.Offset, n, height, c.Index, c.Index+1)
	return c.Offset, min(n, c.Offset+height)
}

// Navigate moves the selection over n rows for the list keys (up, down, top, bottom, and page up
// and down by page rows) and reports whether k was one of them.
func (c *Cursor) Navigate(k tea.KeyMsg, km keys.Map, n, page int) bool {
	switch {
	case key.Matches(k, km.Up):
		c.Move(-1, n)
	case key.Matches(k, km.Down):
		c.Move(1, n)
	case key.Matches(k, km.Top):
		c.Move(-n, n)
	case key.Matches(k, km.Bottom):
		c.Move(n, n)
	case key.Matches(k, km.PageUp):
		c.Move(-page, n)
	case key.Matches(k, km.PageDown):
		c.Move(page, n)
	default:
		return false
	}
	return true
}

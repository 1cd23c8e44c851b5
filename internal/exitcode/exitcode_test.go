package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, OK},
		{"plain error takes the fallback", base, Usage},
		{"carried code", With(Unreachable, base), Unreachable},
		{"carried through wrapping", fmt.Errorf("ctx: %w", With(Auth, base)), Auth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err, Usage); got != tt.want {
				t.Fatalf("Of(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
	if With(Auth, nil) != nil {
		t.Fatal("With(code, nil) must stay nil")
	}
	if err := With(Auth, base); !errors.Is(err, base) || err.Error() != "boom" {
		t.Fatalf("With must wrap transparently, got %v", err)
	}
}

package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moatsec/moat/internal/image"
)

// progressBar draws one status line on a terminal while layers are read. It is used only
// when stderr is a terminal, never when output is piped.
type progressBar struct {
	mu        sync.Mutex
	w         io.Writer
	total     int
	done      int
	read      int64
	size      int64
	last      time.Time
	drawn     bool
	cachedHit int
}

func newProgressBar(w io.Writer, layers []*image.Layer) *progressBar {
	b := &progressBar{w: w, total: len(layers)}
	for _, l := range layers {
		if l.Size > 0 {
			b.size += l.Size
		}
	}
	return b
}

func (b *progressBar) LayerStart(_ int, _ int64, cached bool) {
	if cached {
		b.mu.Lock()
		b.cachedHit++
		b.mu.Unlock()
	}
}

func (b *progressBar) LayerRead(_ int, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.read += n
	if time.Since(b.last) > 100*time.Millisecond {
		b.draw()
	}
}

func (b *progressBar) LayerDone(int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done++
	b.draw()
}

func (b *progressBar) draw() {
	b.last = time.Now()
	b.drawn = true
	fmt.Fprintf(b.w, "\r\033[Klayers %d/%d (%d cached)  %s read", b.done, b.total, b.cachedHit, human(b.read))
}

func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

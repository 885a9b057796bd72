package broker

import "context"

// Run serves until ctx ends, then closes the broker. Start must have been
// called (it is separate so that a caller learns Addr before it runs).
func (b *Broker) Run(ctx context.Context) error {
	<-ctx.Done()
	return b.Close()
}

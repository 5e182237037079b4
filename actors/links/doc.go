// Package links is the transports actor: one listener actor per
// configured transport, one supervised link actor per connection, and the
// dialer that keeps configured peers connected (the transports issue).
// Until then it is a supervised shell that takes part in shutdown.
package links

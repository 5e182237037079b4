// Package node builds and runs one qpc node in-process: the Go API that
// cmd/qpc, the simulator and the tests share (the original's
// MeshNodeBuilder), and the node root actor that supervises the subsystem
// actors.
//
//	n, err := node.New(node.WithConfig(cfg), node.WithCapabilities(messages.CapRelay))
//	err = n.Start(ctx)       // returns once every actor has started
//	n.Inject("test", from, frame)
//	d := <-n.Deliveries()
//	err = n.Stop(ctx)        // Draining → Persisting → Cleanup → Complete
//
// The root actor owns the children's states. It spawns, in dependency
// order, store, keys, fapp, router, ratelimit, announcer, transports and
// the shutdown coordinator; it is itself their supervisor (it implements
// actor.SupervisorStrategy), restarting a failed child after an
// exponential back-off and stopping one that fails too often, counting
// both in metrics. It answers *messages.StatusRequest and forwards
// *messages.BeginShutdown to the coordinator.
package node

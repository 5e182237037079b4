// Package store is the store-and-forward queue for peers that are offline,
// kept in bbolt (the mesh issue). Until then it is a supervised shell that
// takes part in shutdown.
package store

// Package keys holds the KeyPackage cache and MLS / MLS-Lite group state
// (the groups issue). Until then it is a supervised shell that takes part
// in shutdown.
package keys

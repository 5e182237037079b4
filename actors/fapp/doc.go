// Package fapp runs the FAPP store, query matching and reserve / confirm
// (the FAPP issue). Until then it is a supervised shell that takes part in
// shutdown.
package fapp

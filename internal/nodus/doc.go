// Package nodus holds the vocabulary every Nodus module shares: error codes,
// identifiers and the clock. It depends on nothing else in the project, and
// every other package may import it.
package nodus

package dashboard

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Point is a position in the plane.
type Point struct{ X, Y float64 }

// ClassicalMDS places n points in the plane so that their distances
// approximate the symmetric distance matrix d (classical, Torgerson's,
// multidimensional scaling): B = -½ J D⁽²⁾ J with J the centring matrix,
// and the coordinates are B's two largest eigenvectors scaled by the square
// roots of their eigenvalues (a negative eigenvalue counts as 0: the
// distances do not fit in a plane, or a Euclidean space at all). The result
// is centred on the origin; its orientation is arbitrary but deterministic.
func ClassicalMDS(d [][]float64) ([]Point, error) {
	n := len(d)
	for i, row := range d {
		if len(row) != n {
			return nil, fmt.Errorf("mds: row %d has %d distances, want %d", i, len(row), n)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return nil, fmt.Errorf("mds: distance %d-%d is %v, want a finite number of 0 or more", i, j, v)
			}
		}
	}
	if n == 0 {
		return nil, nil
	}
	// Double centring of the squared distances.
	sq := make([][]float64, n)
	rowMean := make([]float64, n)
	all := 0.0
	for i := range n {
		sq[i] = make([]float64, n)
		for j := range n {
			v := (d[i][j] + d[j][i]) / 2
			sq[i][j] = v * v
			rowMean[i] += sq[i][j] / float64(n)
		}
		all += rowMean[i] / float64(n)
	}
	b := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			b.SetSym(i, j, -0.5*(sq[i][j]-rowMean[i]-rowMean[j]+all))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(b, true) { //nolint:misspell // gonum's method name
		return nil, errors.New("mds: the eigendecomposition did not converge")
	}
	values := eig.Values(nil)
	var vectors mat.Dense
	eig.VectorsTo(&vectors)
	// The two largest eigenvalues, in order.
	first, second := -1, -1
	for k := range values {
		switch {
		case first < 0 || values[k] > values[first]:
			first, second = k, first
		case second < 0 || values[k] > values[second]:
			second = k
		}
	}
	out := make([]Point, n)
	for axis, k := range []int{first, second} {
		// Rounding leaves a tiny eigenvalue where the points need fewer
		// dimensions (sites on a line): that is 0.
		if k < 0 || values[k] <= 1e-9*values[first] {
			continue
		}
		scale := math.Sqrt(values[k])
		// Fix the eigenvector's sign: its largest component positive.
		sign, big := 1.0, 0.0
		for i := range n {
			if v := vectors.At(i, k); math.Abs(v) > big+1e-12 {
				big, sign = math.Abs(v), math.Copysign(1, v)
			}
		}
		for i := range n {
			if axis == 0 {
				out[i].X = sign * scale * vectors.At(i, k)
			} else {
				out[i].Y = sign * scale * vectors.At(i, k)
			}
		}
	}
	return out, nil
}

// layoutDistances is the matrix the topology view lays out from the
// snapshot's RTTs (nil is unknown): each pair's mean of its known
// directions; a pair with neither known takes its shortest known path
// (the triangle inequality's bound), and failing that the largest known RTT
// times 1.5, so that a site nothing measured sits apart. known[i][j] says
// whether the pair was measured in either direction.
func layoutDistances(rtt [][]*float64) (d [][]float64, known [][]bool) {
	n := len(rtt)
	d = make([][]float64, n)
	known = make([][]bool, n)
	largest := 0.0
	for i := range n {
		d[i] = make([]float64, n)
		known[i] = make([]bool, n)
		for j := range n {
			d[i][j] = math.Inf(1)
		}
		d[i][i], known[i][i] = 0, true
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			sum, k := 0.0, 0
			for _, v := range []*float64{rtt[i][j], rtt[j][i]} {
				if v != nil {
					sum += *v
					k++
				}
			}
			if k > 0 {
				d[i][j], d[j][i] = sum/float64(k), sum/float64(k)
				known[i][j], known[j][i] = true, true
				largest = math.Max(largest, d[i][j])
			}
		}
	}
	// Shortest paths over the known links (Floyd-Warshall).
	path := make([][]float64, n)
	for i := range n {
		path[i] = append([]float64(nil), d[i]...)
	}
	for k := range n {
		for i := range n {
			for j := range n {
				if v := path[i][k] + path[k][j]; v < path[i][j] {
					path[i][j] = v
				}
			}
		}
	}
	if largest == 0 {
		largest = 1
	}
	for i := range n {
		for j := range n {
			if !known[i][j] {
				d[i][j] = path[i][j]
				if math.IsInf(d[i][j], 1) {
					d[i][j] = 1.5 * largest
				}
			}
		}
	}
	return d, known
}

package stats

import (
	"encoding/csv"
	"io"
	"strconv"
)

// CSVHeader is the first line of a CSV export: one line per table row
// and measure, with up to two dimensions.
var CSVHeader = []string{"table", "dimension1", "key1", "dimension2", "key2", "measure", "value", "status"}

// WriteCSV writes the report as CSV (RFC 4180), in long form: one line
// per value. A suppressed value is empty with status "suppressed"; a
// value with nothing to measure is empty with status "n/a".
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, t := range r.Tables {
		for _, row := range t.Rows {
			dims := make([]string, 4)
			for i, d := range t.Dimensions {
				if i < 2 {
					dims[2*i], dims[2*i+1] = d, row.Keys[d]
				}
			}
			for _, m := range t.Measures {
				value, status := "", ""
				switch v := row.Values[m]; {
				case v != nil:
					value = strconv.FormatFloat(*v, 'f', -1, 64)
				case contains(row.Suppressed, m):
					status = "suppressed"
				default:
					status = "n/a"
				}
				rec := append([]string{t.Name}, dims...)
				if err := cw.Write(append(rec, m, value, status)); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

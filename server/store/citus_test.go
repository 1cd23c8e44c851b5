package store_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

var (
	distributedRe = regexp.MustCompile(`create_distributed_table\('([a-z0-9_]+)', '([a-z0-9_]+)'(?:, colocate_with => '([a-z0-9_]+)')?\)`)
	referenceRe   = regexp.MustCompile(`create_reference_table\('([a-z0-9_]+)'\)`)
	localRe       = regexp.MustCompile(`(?m)^-- local: (.+)$`)
)

// TestCitusPlanMatchesSchema checks deploy/citus/distribution.sql against the migrated schema, with
// the rules Citus enforces when the plan runs: a distributed table's primary key and unique indexes
// include its distribution column; its foreign keys reference a reference table, or a co-located
// distributed table on the distribution column; and every table of the schema is placed.
func TestCitusPlanMatchesSchema(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/citus/distribution.sql")
	if err != nil {
		t.Fatal(err)
	}
	plan := string(raw)
	distributed := map[string]string{} // table -> distribution column
	for _, m := range distributedRe.FindAllStringSubmatch(plan, -1) {
		distributed[m[1]] = m[2]
		if m[3] != "" && distributed[m[3]] == "" {
			t.Errorf("%s is co-located with %s, which is not distributed before it", m[1], m[3])
		}
	}
	reference := map[string]bool{}
	for _, m := range referenceRe.FindAllStringSubmatch(plan, -1) {
		reference[m[1]] = true
	}
	local := map[string]bool{}
	for _, m := range localRe.FindAllStringSubmatch(plan, -1) {
		for _, name := range strings.Fields(m[1]) {
			local[name] = true
		}
	}
	if len(distributed) == 0 || len(reference) == 0 {
		t.Fatalf("the plan distributes %d tables and replicates %d: it did not parse", len(distributed), len(reference))
	}

	_, pool := migratedDB(t)
	ctx := ctxT(t)
	rows, err := pool.Query(ctx, `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range tables {
		placed := 0
		for _, set := range []bool{distributed[tbl] != "", reference[tbl], local[tbl]} {
			if set {
				placed++
			}
		}
		if placed != 1 {
			t.Errorf("table %s is placed %d times in the plan, want once (distributed, reference or local)", tbl, placed)
		}
	}
	for _, named := range append(append(keys(distributed), keys(reference)...), keys(local)...) {
		if !slices.Contains(tables, named) {
			t.Errorf("the plan names %s, which the schema does not have", named)
		}
	}

	for tbl, col := range distributed {
		var hasCol bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2)`, tbl, col).Scan(&hasCol); err != nil {
			t.Fatal(err)
		}
		if !hasCol {
			t.Errorf("%s has no column %s to distribute by", tbl, col)
			continue
		}
		// Primary keys and unique indexes (constraints or not) must hold the distribution column.
		rows, err := pool.Query(ctx, `
			SELECT i.relname, array_agg(a.attname::text)
			FROM pg_index x
			JOIN pg_class t ON t.oid = x.indrelid
			JOIN pg_class i ON i.oid = x.indexrelid
			LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (x.indkey)
			WHERE t.relname = $1 AND x.indisunique
			GROUP BY i.relname`, tbl)
		if err != nil {
			t.Fatal(err)
		}
		type uniq struct {
			name string
			cols []string
		}
		uniques, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (uniq, error) {
			var u uniq
			err := r.Scan(&u.name, &u.cols)
			return u, err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uniques {
			if !slices.Contains(u.cols, col) {
				t.Errorf("%s: unique index %s (%v) lacks the distribution column %s", tbl, u.name, u.cols, col)
			}
		}
		// Foreign keys: to a reference table, or to a distributed table by the distribution column.
		rows, err = pool.Query(ctx, `
			SELECT c.conname, f.relname,
				(SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = c.conrelid AND attnum = ANY (c.conkey)),
				(SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = c.confrelid AND attnum = ANY (c.confkey))
			FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class f ON f.oid = c.confrelid
			WHERE c.contype = 'f' AND t.relname = $1`, tbl)
		if err != nil {
			t.Fatal(err)
		}
		type fk struct {
			name, to      string
			cols, refCols []string
		}
		fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fk, error) {
			var f fk
			err := r.Scan(&f.name, &f.to, &f.cols, &f.refCols)
			return f, err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fks {
			switch {
			case reference[f.to]:
			case distributed[f.to] != "" && slices.Contains(f.cols, col) && slices.Contains(f.refCols, distributed[f.to]):
			default:
				t.Errorf("%s: foreign key %s to %s is neither to a reference table nor along %s", tbl, f.name, f.to, col)
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

# Writes the benchmark's users twice, the same rows in both: a CSV file for
# PostgreSQL's COPY and KEY<TAB>JSON lines for examples/load_benchmark_topic.rs.
#
#   awk -v rows=1000000 -v csv=users.csv -v tsv=users.tsv -f gen-users.awk
#
# Keys are the decimal strings "0".."rows-1": pgbench's \set only makes numbers,
# and a key that is a bare number lets lookup.sql send the whole key as the one
# parameter of `WHERE id = $1`, which is the shape ktable's prepared fast path
# and PostgreSQL's index scan both serve. Values are a pure function of the key
# (multiplicative hashes, exact in awk's doubles below 2^53), so every run and
# both servers see the same data.
BEGIN {
  if (rows == "" || csv == "" || tsv == "") {
    print "gen-users.awk: set -v rows=N -v csv=FILE -v tsv=FILE" > "/dev/stderr"
    exit 2
  }
  ncities = split("Lisbon Porto Madrid Paris Berlin Rome Vienna Prague Warsaw Dublin " \
                  "London Oslo Stockholm Helsinki Copenhagen Amsterdam Brussels Zurich Athens Budapest",
                  cities, " ")
  for (i = 0; i < rows; i++) {
    age = 18 + (i * 7919) % 63
    city = cities[1 + (i * 104729) % ncities]
    score = ((i * 15485863) % 1000000) / 100
    printf "%d,User %d,user%d@example.com,%d,%s,%.2f\n", i, i, i, age, city, score > csv
    printf "%d\t{\"name\":\"User %d\",\"email\":\"user%d@example.com\",\"age\":%d,\"city\":\"%s\",\"score\":%.2f}\n",
      i, i, i, age, city, score > tsv
  }
  close(csv)
  close(tsv)
}

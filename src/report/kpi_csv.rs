//! The CSV exporter: `kpis.csv` (one [`KpiRow`] per line), `trials.csv`
//! (one [`TrialRow`] per line), and for multi-rank tests `pairs.csv`,
//! `incast.csv`, `alltoall.csv`, `contention.csv`, `kv.csv` and
//! `counters.csv` ([`PairsRow`], [`IncastRow`], [`AllToAllRow`],
//! [`ContentionRow`], [`KvRow`], [`CounterRow`]), for spreadsheets and plotting scripts (draft
//! §14 "Raw Data Appendix"). Columns are the rows' field names, with units;
//! an absent value is an empty cell. The header is written even when there
//! are no rows, so a script can always read the columns.

use std::io;

use serde::Serialize;

use super::fabric_kpi::{CounterRow, IncastRow, PairsRow};
use super::kpi::{KpiRow, TrialRow};
use super::kv_kpi::KvRow;
use super::moe_kpi::{AllToAllRow, ContentionRow};

/// The header line of `T`'s CSV: the field names of a default row.
fn columns<T: Serialize + Default>() -> Result<csv::StringRecord, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.serialize(T::default())?;
    let bytes = writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    Ok(reader.headers()?.clone())
}

fn write_rows<T: Serialize + Default, W: io::Write>(rows: &[T], out: W) -> Result<(), csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    writer.write_record(&columns::<T>()?)?;
    for row in rows {
        writer.serialize(row)?;
    }
    writer.flush()?;
    Ok(())
}

/// Writes `kpis.csv` content: a header, then one line per row.
pub fn write_kpis_csv<W: io::Write>(rows: &[KpiRow], out: W) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

/// Writes `trials.csv` content: a header, then one line per row.
pub fn write_trials_csv<W: io::Write>(rows: &[TrialRow], out: W) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

/// Writes `pairs.csv` content: a header, then one line per row.
pub fn write_pairs_csv<W: io::Write>(rows: &[PairsRow], out: W) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

/// Writes `incast.csv` content: a header, then one line per row.
pub fn write_incast_csv<W: io::Write>(rows: &[IncastRow], out: W) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

/// Writes `alltoall.csv` content: a header, then one line per row.
pub fn write_alltoall_csv<W: io::Write>(rows: &[AllToAllRow], out: W) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

/// Writes `contention.csv` content: a header, then one line per row.
pub fn write_contention_csv<W: io::Write>(
    rows: &[ContentionRow],
    out: W,
) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

/// Writes `kv.csv` content: a header, then one line per row.
pub fn write_kv_csv<W: io::Write>(rows: &[KvRow], out: W) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

/// Writes `counters.csv` content: a header, then one line per row.
pub fn write_counters_csv<W: io::Write>(rows: &[CounterRow], out: W) -> Result<(), csv::Error> {
    write_rows(rows, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{counter_rows, incast_rows, kpi_rows, kv_rows, pairs_rows, trial_rows};
    use crate::results::RunReport;

    fn fixture(text: &str) -> RunReport {
        serde_json::from_str(text).unwrap()
    }

    fn read(bytes: &[u8]) -> (Vec<String>, Vec<csv::StringRecord>) {
        let mut reader = csv::Reader::from_reader(bytes);
        let header = reader.headers().unwrap().iter().map(String::from).collect();
        (header, reader.records().map(Result::unwrap).collect())
    }

    #[test]
    fn kpi_columns_are_named_with_units() {
        let report = fixture(include_str!("../../tests/fixtures/results/bw-write.json"));
        let mut out = Vec::new();
        write_kpis_csv(&kpi_rows("bw-write.json", &report), &mut out).unwrap();
        let (header, records) = read(&out);
        for column in [
            "file",
            "test_id",
            "msg_bytes",
            "qps",
            "trials",
            "gbytes_per_s_mean",
            "gbytes_per_s_ci95_half_width",
            "gbits_per_s_mean",
            "msgs_per_s_mean",
            "jain_index_mean",
            "cpu_initiator_percent_mean",
            "latency_clock",
            "latency_p50_ns",
            "latency_p99_ns",
            "latency_p999_ns",
            "latency_p99_minus_p50_ns",
        ] {
            assert!(header.iter().any(|h| h == column), "no column {column}");
        }
        // Bandwidth mode: one clock ("message-completion"), one row per configuration.
        assert_eq!(records.len(), report.results.len());
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let first = &records[0];
        assert_eq!(&first[col("file")], "bw-write.json");
        assert_eq!(
            first[col("msg_bytes")].parse::<u64>().unwrap(),
            report.results[0].msg_bytes
        );
        let mean: f64 = first[col("gbytes_per_s_mean")].parse().unwrap();
        assert_eq!(
            mean,
            report.results[0]
                .summary
                .gbytes_per_s
                .as_ref()
                .unwrap()
                .mean
        );
        // One QP: no Jain index, an empty cell rather than 0.
        assert_eq!(report.results[0].qps, 1);
        assert_eq!(&first[col("jain_index_mean")], "");
    }

    #[test]
    fn trial_rows_repeat_per_clock_and_the_header_is_always_there() {
        let report = fixture(include_str!(
            "../../tests/fixtures/results/lat-write-imm.json"
        ));
        let rows = trial_rows("lat.json", &report);
        let expected: usize = report
            .results
            .iter()
            .flat_map(|c| &c.trials)
            .map(|t| t.latency.len().max(1))
            .sum();
        assert_eq!(rows.len(), expected);
        let mut out = Vec::new();
        write_trials_csv(&rows, &mut out).unwrap();
        let (header, records) = read(&out);
        assert_eq!(records.len(), expected);
        for column in [
            "trial",
            "seconds",
            "bytes",
            "gbytes_per_s",
            "cpu_target_percent",
            "latency_clock",
            "latency_max_ns",
        ] {
            assert!(header.iter().any(|h| h == column), "no column {column}");
        }

        let mut empty = Vec::new();
        write_kpis_csv(&[], &mut empty).unwrap();
        let (header, records) = read(&empty);
        assert!(header.len() > 30);
        assert!(records.is_empty());
    }

    #[test]
    fn fabric_csvs_have_unit_columns_and_empty_cells_for_none() {
        let pairs = fixture(include_str!("../../tests/fixtures/results/pairs-5.3.json"));
        let mut out = Vec::new();
        write_pairs_csv(&pairs_rows("p.json", &pairs), &mut out).unwrap();
        let (header, records) = read(&out);
        assert_eq!(records.len(), 3);
        let col = |h: &[String], name: &str| h.iter().position(|c| c == name).unwrap();
        assert_eq!(&records[0][col(&header, "jain_index_mean")], "");
        assert!(header.iter().any(|h| h == "aggregate_gbytes_per_s_mean"));
        assert!(header.iter().any(|h| h == "latency_p99_ns_mean"));

        let mut out = Vec::new();
        write_counters_csv(&counter_rows("p.json", &pairs), &mut out).unwrap();
        let (header, records) = read(&out);
        assert_eq!(
            &records[0][col(&header, "ecn_marked_packets")],
            "",
            "n/a, not 0"
        );
        assert_eq!(&records[0][col(&header, "qp_errors")], "0");
        assert_eq!(&records[0][col(&header, "senders")], "");

        let incast = fixture(include_str!("../../tests/fixtures/results/incast-8.2.json"));
        let mut out = Vec::new();
        write_incast_csv(&incast_rows("i.json", &incast), &mut out).unwrap();
        let (header, records) = read(&out);
        assert_eq!(records.len(), 2);
        for column in [
            "arrival_window_ns",
            "fct_p99_ns_mean",
            "aggregate_rx_gbytes_per_s_mean",
        ] {
            assert!(header.iter().any(|h| h == column), "no column {column}");
        }
    }

    #[test]
    fn kv_csv_has_a_row_per_prompt_length_with_unit_columns() {
        let kv = fixture(include_str!("../../tests/fixtures/results/kv-10.1.json"));
        let mut out = Vec::new();
        write_kv_csv(&kv_rows("kv.json", &kv), &mut out).unwrap();
        let (header, records) = read(&out);
        assert_eq!(records.len(), kv.kv.as_ref().unwrap().points.len());
        for column in [
            "prompt_tokens",
            "bytes_per_request",
            "descriptors_per_request",
            "wrs_per_request",
            "requests",
            "t_prefill_modelled_ns",
            "t_transfer_p50_ns",
            "t_transfer_p99_ns",
            "t_transfer_exposed_p50_ns",
            "ttft_p50_ns",
            "ttft_p95_ns",
            "ttft_p99_ns",
            "transfer_share_p50",
            "post_ns_per_descriptor",
            "notify_lag_p50_ns",
            "gbytes_per_s_mean",
            "gbytes_per_s_ci95_half_width",
        ] {
            assert!(header.iter().any(|h| h == column), "no column {column}");
        }
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(&records[0][col("prompt_tokens")], "512");
        assert_eq!(
            &records[0][col("verify_mismatches")],
            "",
            "no --verify: empty"
        );
    }
}

//! Prometheus remote_write bodies: a snappy-compressed (block format) protobuf
//! `prometheus.WriteRequest` (prompb/remote.proto, types.proto), encoded by hand for
//! the few fields the twin uses: `timeseries { labels { name value } samples { value
//! timestamp } }`. Unknown fields are skipped on decode, as protobuf requires.

/// One label set per time series, in order.
pub type Series = Vec<(String, String)>;

/// Encodes one sample per series (value 1, timestamp `ts_ms`) and compresses it.
pub fn encode(series: &[Series], ts_ms: i64) -> Vec<u8> {
    let mut req = Vec::new();
    for labels in series {
        let mut ts = Vec::new();
        for (name, value) in labels {
            let mut label = Vec::new();
            put_bytes(&mut label, 1, name.as_bytes());
            put_bytes(&mut label, 2, value.as_bytes());
            put_bytes(&mut ts, 1, &label);
        }
        let mut sample = Vec::new();
        put_key(&mut sample, 1, 1);
        sample.extend_from_slice(&1.0f64.to_le_bytes());
        put_key(&mut sample, 2, 0);
        put_varint(&mut sample, ts_ms as u64);
        put_bytes(&mut ts, 2, &sample);
        put_bytes(&mut req, 1, &ts);
    }
    snap::raw::Encoder::new()
        .compress_vec(&req)
        .unwrap_or_default()
}

/// Decompresses and decodes a body into the label sets of its series.
pub fn decode(body: &[u8]) -> Result<Vec<Series>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy: {e}"))?;
    let mut out = Vec::new();
    for (field, value) in fields(&raw)? {
        if field != 1 {
            continue;
        }
        let mut labels = Vec::new();
        for (f, label) in fields(value)? {
            if f != 1 {
                continue;
            }
            let (mut name, mut val) = (String::new(), String::new());
            for (lf, bytes) in fields(label)? {
                let s = String::from_utf8_lossy(bytes).into_owned();
                match lf {
                    1 => name = s,
                    2 => val = s,
                    _ => {}
                }
            }
            labels.push((name, val));
        }
        out.push(labels);
    }
    Ok(out)
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, u64::from(field << 3) | u64::from(wire));
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(buf, field, 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// The length-delimited fields of a message (other wire types skipped).
fn fields(buf: &[u8]) -> Result<Vec<(u64, &[u8])>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(buf, &mut pos)?;
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|e| e.to_string())?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                out.push((field, &buf[pos..end]));
                pos = end;
            }
            other => return Err(format!("unsupported wire type {other}")),
        }
    }
    if pos > buf.len() {
        return Err("truncated message".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_label_of_every_series() {
        let series = vec![
            vec![
                ("__name__".to_string(), "x".to_string()),
                ("seq".into(), "1".into()),
            ],
            vec![("seq".to_string(), "2".to_string())],
        ];
        let body = encode(&series, 1_700_000_000_000);
        assert_eq!(decode(&body).unwrap(), series);
        assert!(decode(b"not snappy at all").is_err());
    }
}

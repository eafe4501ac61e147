#include "vmlab/viz/models/search_query.hpp"

#include "vmlab/format.hpp"
#include "vmlab/viz/models/text.hpp"

namespace vmlab::viz {

namespace {

bool parse_address(QStringView text, std::uint64_t& address) {
  if (!text.startsWith(QLatin1String("0x"), Qt::CaseInsensitive) || text.size() < 3) return false;
  bool ok = false;
  address = text.mid(2).toULongLong(&ok, 16);
  return ok;
}

}  // namespace

QString SearchQuery::description() const {
  switch (by) {
    case By::Reason:
      return QStringLiteral("reason %1").arg(to_qstring(event_reason_name(reason)));
    case By::Rip:
      return first_rip == last_rip ? QStringLiteral("guest RIP %1").arg(hex_text(first_rip))
                                   : QStringLiteral("guest RIP %1 to %2")
                                         .arg(hex_text(first_rip), hex_text(last_rip));
    case By::Detail:
      return QStringLiteral("instruction holding '%1'").arg(QString::fromStdString(text));
  }
  return {};
}

Result<SearchQuery> parse_search_query(const QString& input) {
  const QString text = input.trimmed();
  if (text.isEmpty())
    return Error{SearchQueryError::kEmpty, "type a reason, a guest RIP or an instruction"};
  SearchQuery query;
  if (const auto reason = parse_event_reason(text.toStdString())) {
    query.by = SearchQuery::By::Reason;
    query.reason = *reason;
    return query;
  }
  if (text.startsWith(QLatin1String("0x"), Qt::CaseInsensitive)) {
    const qsizetype dash = text.indexOf(QLatin1Char('-'));
    const QStringView whole(text);
    const QStringView first = dash < 0 ? whole : whole.left(dash).trimmed();
    const QStringView last = dash < 0 ? whole : whole.mid(dash + 1).trimmed();
    if (!parse_address(first, query.first_rip) || !parse_address(last, query.last_rip)) {
      return Error{SearchQueryError::kBadAddress,
                   single_quoted(text.toStdString(), 60) +
                       " is not a guest RIP (0x and hexadecimal digits) or a range of them "
                       "(0x100000-0x100fff)"};
    }
    query.by = SearchQuery::By::Rip;
    return query;
  }
  query.by = SearchQuery::By::Detail;
  query.text = text.toStdString();
  return query;
}

Result<std::vector<EventIndex>> run_search(const TraceModel& trace, const SearchQuery& query) {
  switch (query.by) {
    case SearchQuery::By::Reason:
      return find_by_reason(trace, query.reason);
    case SearchQuery::By::Rip:
      return find_by_rip(trace, query.first_rip, query.last_rip);
    case SearchQuery::By::Detail:
      return find_by_detail(trace, query.text, TextMatch::Contains);
  }
  return std::vector<EventIndex>{};
}

}  // namespace vmlab::viz
